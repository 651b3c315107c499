import { LogStream } from '@flashpods/contracts';
import { LineFramer, SecretMasker } from '@flashpods/log-format';
import { JobLogPublisher } from '@flashpods/job-stream';
import { runnerMetrics } from './runner.metrics';

type Output = LogStream.Stdout | LogStream.Stderr;

/**
 * Frames stdout and stderr into lines (each stream on its own, so a partial stdout line never
 * swallows a stderr one), masks secrets on whole lines, and hands them to the publisher. The
 * masker also guards the framer's splits of over-long lines, so no piece holds part of a secret.
 * When replaying a container's output after a restart, the first `skip` lines of each stream
 * were shipped before and are dropped.
 */
export class LogCapture {
  private readonly framers: Record<Output, LineFramer>;
  private readonly skip: Record<Output, number>;
  /** Lines captured by the current write(), reported to the metrics once it is done. */
  private readonly count = { lines: 0, bytes: 0 };

  constructor(
    private readonly publisher: JobLogPublisher,
    private readonly masker: SecretMasker,
    maxLineBytes: number,
    skip: { stdout: number; stderr: number } = { stdout: 0, stderr: 0 },
  ) {
    const guard = masker.isEmpty ? undefined : masker;
    this.framers = {
      [LogStream.Stdout]: new LineFramer(maxLineBytes, guard),
      [LogStream.Stderr]: new LineFramer(maxLineBytes, guard),
    };
    this.skip = { [LogStream.Stdout]: skip.stdout, [LogStream.Stderr]: skip.stderr };
  }

  /** `ts`: when the bytes were produced (Docker's timestamp on replay); now by default. */
  write(stream: Output, chunk: Buffer, ts = Date.now()): Promise<void> | undefined {
    let waits: Promise<void>[] | undefined;
    this.count.lines = 0;
    this.count.bytes = 0;
    this.framers[stream].push(chunk, (buf, start, end) => {
      const w = this.emit(stream, buf, start, end, ts);
      if (w) (waits ??= []).push(w);
    });
    if (this.count.lines > 0) runnerMetrics.captured(stream, this.count.lines, this.count.bytes);
    return waits && (waits.length === 1 ? waits[0] : Promise.all(waits).then(() => undefined));
  }

  /** Ships lines left without a newline when the output ended. */
  async end(): Promise<void> {
    const ts = Date.now();
    for (const stream of [LogStream.Stdout, LogStream.Stderr] as const) {
      this.count.lines = 0;
      this.count.bytes = 0;
      this.framers[stream].flush((buf, start, end) => void this.emit(stream, buf, start, end, ts));
      if (this.count.lines > 0) runnerMetrics.captured(stream, this.count.lines, this.count.bytes);
    }
    await this.publisher.flush();
  }

  /** The line is `buf[start, end)`. */
  private emit(stream: Output, buf: Buffer, start: number, end: number, ts: number): Promise<void> | undefined {
    if (this.skip[stream] > 0) {
      this.skip[stream]--;
      return undefined;
    }
    this.count.lines++;
    this.count.bytes += end - start;
    // The publisher copies the bytes into its chunk at once, so the transport's buffer is safe to
    // pass; with no secret to mask, as a range of it (no Buffer made per line).
    if (this.masker.isEmpty) return this.publisher.line(stream, buf, ts, start, end);
    return this.publisher.line(stream, this.masker.mask(buf.subarray(start, end)), ts);
  }
}
