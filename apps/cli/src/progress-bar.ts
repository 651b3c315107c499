/** `[#########...........]  45%  1.2/2.6 MB`, redrawn in place on a terminal. */
export function progressLine(done: number, total: number | undefined, width = 30): string {
  const mb = (n: number) => (n / 1_048_576).toFixed(1);
  if (!total) return `${mb(done)} MB`;
  const ratio = Math.min(1, done / total);
  const filled = Math.round(ratio * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(Math.floor(ratio * 100)).padStart(3)}%  ${mb(done)}/${mb(total)} MB`;
}

/** Draws `progressLine` on `stream` at most every `intervalMs`; `finish()` ends the line. */
export class ProgressBar {
  private last = 0;
  private drawn = false;

  constructor(
    private readonly stream: NodeJS.WritableStream,
    private readonly total: number | undefined,
    private readonly intervalMs = 100,
  ) {}

  update(done: number, force = false): void {
    const now = Date.now();
    if (!force && now - this.last < this.intervalMs) return;
    this.last = now;
    this.drawn = true;
    this.stream.write(`\r${progressLine(done, this.total)}\x1b[K`);
  }

  finish(done: number): void {
    this.update(done, true);
    if (this.drawn) this.stream.write('\n');
  }
}
