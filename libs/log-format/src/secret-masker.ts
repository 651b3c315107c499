export const MASK = Buffer.from('[MASKED]');

/**
 * Lines of a multi-line secret shorter than this (after trimming) are not masked on their own: a
 * `}` or `-----` line would otherwise mask half the log. They are still masked inside the whole value.
 */
export const MIN_SECRET_LINE_BYTES = 4;

/**
 * Every byte string to mask for these secret values: each value whole, and each non-trivial line
 * of a multi-line value on its own. The log is framed into lines before it is masked, so a
 * multi-line value printed whole reaches the masker one line at a time; its lines are what must
 * match.
 */
function patternsOf(values: Iterable<string>): Buffer[] {
  const out = new Set<string>();
  for (const v of values) {
    if (v.length === 0) continue;
    out.add(v);
    if (!/[\r\n]/.test(v)) continue;
    for (const line of v.split(/\r?\n|\r/)) {
      const t = line.trim();
      if (Buffer.byteLength(t) >= MIN_SECRET_LINE_BYTES) out.add(t);
    }
  }
  return [...out].map((p) => Buffer.from(p)).sort((a, b) => b.length - a.length);
}

/**
 * Replaces every occurrence of a secret value in a line with `[MASKED]`. Applied to whole lines
 * (after framing), so a value written in two pieces is masked too; a multi-line value is masked
 * line by line. Longest patterns first, so a secret that contains another is masked whole.
 * `safeCut` keeps a line that must be split (longer than the line limit) from being cut inside a
 * secret, where neither piece would match.
 */
export class SecretMasker {
  private readonly patterns: Buffer[];

  constructor(values: Iterable<string>) {
    this.patterns = patternsOf(values);
  }

  get isEmpty(): boolean {
    return this.patterns.length === 0;
  }

  mask(line: Buffer): Buffer {
    let out = line;
    for (const secret of this.patterns) {
      let at = out.indexOf(secret);
      if (at === -1) continue;
      const pieces: Buffer[] = [];
      let from = 0;
      while (at !== -1) {
        pieces.push(out.subarray(from, at), MASK);
        from = at + secret.length;
        at = out.indexOf(secret, from);
      }
      pieces.push(out.subarray(from));
      out = Buffer.concat(pieces);
    }
    return out;
  }

  /** Masks a string (for system lines and error messages built from user data). */
  maskString(text: string): string {
    return this.isEmpty ? text : this.mask(Buffer.from(text)).toString();
  }

  /**
   * The largest cut at or before `cut` such that no secret in `buf` (nor one that `buf`'s end may
   * be the beginning of) spans it: each piece then holds any secret whole, and `mask` finds it.
   * Returns 0 when a secret starts at 0 and is longer than `cut` (it cannot fit in one piece).
   */
  safeCut(buf: Buffer, cut: number): number {
    let at = cut;
    for (let moved = true; moved && at > 0; ) {
      moved = false;
      for (const p of this.patterns) {
        const start = this.spanning(buf, p, at);
        if (start !== -1 && start < at) {
          at = start;
          moved = true;
        }
      }
    }
    return at;
  }

  /** The earliest start of `p` in `buf` (or of a prefix of `p` ending `buf`) that spans `cut`; -1 if none. */
  private spanning(buf: Buffer, p: Buffer, cut: number): number {
    const from = Math.max(0, cut - p.length + 1);
    const found = buf.indexOf(p, from);
    if (found !== -1 && found < cut) return found;
    // `buf` may end inside a secret whose rest has not arrived yet.
    for (let start = Math.max(from, buf.length - p.length + 1); start < cut; start++) {
      if (buf[start] === p[0] && buf.subarray(start).equals(p.subarray(0, buf.length - start))) return start;
    }
    return -1;
  }
}
