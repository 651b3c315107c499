import { LogStream } from '@flashpods/contracts';
import { LineFramer, SecretMasker } from '@flashpods/log-format';
import { JobLogPublisher } from './job-log.publisher';

type Output = LogStream.Stdout | LogStream.Stderr;

/**
 * Frames stdout and stderr into lines (each stream on its own, so a partial stdout line never
 * swallows a stderr one), masks secrets on whole lines, and hands them to the publisher.
 * When replaying a container's output after a restart, the first `skip` lines of each stream
 * were shipped before and are dropped.
 */
export class LogCapture {
  private readonly framers: Record<Output, LineFramer>;
  private readonly skip: Record<Output, number>;

  constructor(
    private readonly publisher: JobLogPublisher,
    private readonly masker: SecretMasker,
    maxLineBytes: number,
    skip: { stdout: number; stderr: number } = { stdout: 0, stderr: 0 },
  ) {
    this.framers = {
      [LogStream.Stdout]: new LineFramer(maxLineBytes),
      [LogStream.Stderr]: new LineFramer(maxLineBytes),
    };
    this.skip = { [LogStream.Stdout]: skip.stdout, [LogStream.Stderr]: skip.stderr };
  }

  /** `ts`: when the bytes were produced (Docker's timestamp on replay); now by default. */
  write(stream: Output, chunk: Buffer, ts = Date.now()): Promise<void> | undefined {
    let wait: Promise<void> | undefined;
    this.framers[stream].push(chunk, (line) => {
      wait = this.emit(stream, line, ts) ?? wait;
    });
    return wait;
  }

  /** Ships lines left without a newline when the output ended. */
  async end(): Promise<void> {
    const ts = Date.now();
    for (const stream of [LogStream.Stdout, LogStream.Stderr] as const) {
      this.framers[stream].flush((line) => void this.emit(stream, line, ts));
    }
    await this.publisher.flush();
  }

  private emit(stream: Output, line: Buffer, ts: number): Promise<void> | undefined {
    if (this.skip[stream] > 0) {
      this.skip[stream]--;
      return undefined;
    }
    // The publisher copies the bytes into its chunk at once, so a view into the transport's
    // buffer is safe to pass.
    return this.publisher.line(stream, this.masker.mask(line), ts);
  }
}
