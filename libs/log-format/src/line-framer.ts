const NEWLINE = 0x0a;

/**
 * The largest cut at or before `max` that does not split a UTF-8 character. Falls back to `max`
 * when the bytes there are not UTF-8 (no lead byte within 3 bytes back): bytes are kept either way.
 */
export function utf8SafeCut(buf: Buffer, max: number): number {
  let cut = max;
  while (cut > max - 4 && cut > 0 && (buf[cut] & 0xc0) === 0x80) cut--;
  return cut > max - 4 && cut > 0 ? cut : max;
}

/** Moves a split point back so that it does not fall inside something that must stay whole. */
export interface CutGuard {
  safeCut(buf: Buffer, cut: number): number;
}

/**
 * Turns a byte stream into lines. Lines are cut only at `\n`, so a UTF-8 character split across
 * chunks is reassembled. A line longer than `maxLineBytes` is split into pieces of at most that
 * size, each cut on a character boundary; nothing is dropped. `\r`, ANSI codes and invalid UTF-8
 * pass through untouched. Emitted lines exclude the `\n`. A `guard` (the job's SecretMasker) keeps
 * a split from cutting a secret in two, where neither piece would be masked.
 * A line is handed on as `buf[start, end)`: in the common case a range of the chunk pushed, with no
 * object made for it. The bytes are valid only during the call.
 */
export type OnLine = (buf: Buffer, start: number, end: number) => void;

export class LineFramer {
  private parts: Buffer[] = [];
  private pendingBytes = 0;

  constructor(
    private readonly maxLineBytes: number,
    private readonly guard?: CutGuard,
  ) {}

  push(chunk: Buffer, onLine: OnLine): void {
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(NEWLINE, start);
      if (nl === -1) {
        this.append(chunk.subarray(start), onLine);
        return;
      }
      if (this.pendingBytes === 0 && nl - start <= this.maxLineBytes) {
        // The common case, a whole line inside the chunk: handed on as a range, nothing buffered.
        onLine(chunk, start, nl);
      } else {
        this.append(chunk.subarray(start, nl), onLine);
        emit(this.take(), onLine);
      }
      start = nl + 1;
    }
  }

  /** Emits a final line that had no newline, if any. */
  flush(onLine: OnLine): void {
    if (this.pendingBytes > 0) emit(this.take(), onLine);
  }

  get bufferedBytes(): number {
    return this.pendingBytes;
  }

  private append(piece: Buffer, onLine: OnLine): void {
    if (piece.length === 0) return;
    if (this.pendingBytes + piece.length <= this.maxLineBytes) {
      this.parts.push(piece);
      this.pendingBytes += piece.length;
      return;
    }
    let buf = this.take(piece);
    while (buf.length > this.maxLineBytes) {
      let cut = utf8SafeCut(buf, this.maxLineBytes);
      // 0: a secret longer than a whole piece starts here; it is split anyway (nothing is dropped).
      cut = this.guard?.safeCut(buf, cut) || cut;
      onLine(buf, 0, cut);
      buf = buf.subarray(cut);
    }
    if (buf.length > 0) {
      this.parts.push(buf);
      this.pendingBytes = buf.length;
    }
  }

  private take(extra?: Buffer): Buffer {
    const all = extra ? [...this.parts, extra] : this.parts;
    const line = all.length === 1 ? all[0] : Buffer.concat(all);
    this.parts = [];
    this.pendingBytes = 0;
    return line;
  }
}

function emit(line: Buffer, onLine: OnLine): void {
  onLine(line, 0, line.length);
}
