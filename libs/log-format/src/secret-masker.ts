export const MASK = Buffer.from('[MASKED]');

/**
 * Replaces every occurrence of a secret value in a line with `[MASKED]`. Applied to whole lines
 * (after framing), so a value written in two pieces is masked too. Longest values first, so a
 * secret that contains another is masked whole.
 */
export class SecretMasker {
  private readonly secrets: Buffer[];

  constructor(values: Iterable<string>) {
    this.secrets = [...new Set(values)]
      .filter((v) => v.length > 0)
      .map((v) => Buffer.from(v))
      .sort((a, b) => b.length - a.length);
  }

  get isEmpty(): boolean {
    return this.secrets.length === 0;
  }

  mask(line: Buffer): Buffer {
    let out = line;
    for (const secret of this.secrets) {
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
}
