import { LogStream } from '@flashpods/contracts';
import { LineFramer, SecretMasker } from '@flashpods/log-format';
import { JobLogPublisher } from './job-log.publisher';

/**
 * Frames stdout and stderr into lines (each stream on its own, so a partial stdout line never
 * swallows a stderr one), masks secrets on whole lines, and hands them to the publisher.
 */
export class LogCapture {
  private readonly framers: Record<LogStream.Stdout | LogStream.Stderr, LineFramer>;

  constructor(
    private readonly publisher: JobLogPublisher,
    private readonly masker: SecretMasker,
    maxLineBytes: number,
  ) {
    this.framers = {
      [LogStream.Stdout]: new LineFramer(maxLineBytes),
      [LogStream.Stderr]: new LineFramer(maxLineBytes),
    };
  }

  write(stream: LogStream.Stdout | LogStream.Stderr, chunk: Buffer): Promise<void> | undefined {
    const ts = Date.now();
    let wait: Promise<void> | undefined;
    this.framers[stream].push(chunk, (line) => {
      // Copy: the framer hands out views into transport buffers that may be reused.
      wait = this.publisher.line(stream, Buffer.from(this.masker.mask(line)), ts) ?? wait;
    });
    return wait;
  }

  /** Ships lines left without a newline when the output ended. */
  async end(): Promise<void> {
    const ts = Date.now();
    for (const stream of [LogStream.Stdout, LogStream.Stderr] as const) {
      this.framers[stream].flush((line) => void this.publisher.line(stream, Buffer.from(this.masker.mask(line)), ts));
    }
    await this.publisher.flush();
  }
}
