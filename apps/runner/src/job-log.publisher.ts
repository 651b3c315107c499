import { LINES_FIELDS, LogLine, LogStream, STATUS_FIELDS, StatusEvent, StreamEntryType } from '@flashpods/contracts';
import { encodedLineSize, encodeLines, storedLineBytes, truncationMarkerText } from '@flashpods/log-format';
import Redis from 'ioredis';

export interface PublisherSettings {
  /** LOG_MAX_BYTES: the line that would take the stored log past this becomes the marker. */
  logMaxBytes: number;
  chunkMaxBytes: number;
  chunkMaxDelayMs: number;
  /** Entries the persister has not yet trimmed; above this the publisher waits (backpressure). */
  maxUnpersistedEntries: number;
}

/**
 * Ships one job's lines, numbered from `lastSeq + 1`, to its Redis stream in chunks of at most
 * `chunkMaxBytes` or `chunkMaxDelayMs`, and status events in order with them. Writes are
 * serialised, so the stream holds lines and events in the order they were produced.
 */
export class JobLogPublisher {
  private pending: LogLine[] = [];
  private pendingBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  private failure: Error | undefined;
  private storedBytes = 0;
  private truncated = false;

  constructor(
    private readonly redis: Redis,
    private readonly streamKey: string,
    private readonly settings: PublisherSettings,
    private seq = 0,
  ) {}

  get lastSeq(): number {
    return this.seq;
  }

  get isTruncated(): boolean {
    return this.truncated;
  }

  /**
   * Queues a line; the returned promise (when there is one) settles once the chunk is shipped.
   * The cap is applied here, at the source, with the persister's rule, so that live readers and
   * the file see the same lines: the line that would pass it becomes the marker, later ones are
   * dropped (the workload keeps running and its output keeps being drained).
   */
  line(stream: LogStream, text: Buffer, ts: number): Promise<void> | undefined {
    if (this.failure) throw this.failure;
    if (this.truncated) return undefined;
    const size = storedLineBytes(text);
    if (this.storedBytes + size > this.settings.logMaxBytes) {
      this.truncated = true;
      stream = LogStream.System;
      text = Buffer.from(truncationMarkerText(this.settings.logMaxBytes));
    }
    this.storedBytes += size;
    this.pending.push({ seq: ++this.seq, ts, stream, text });
    this.pendingBytes += encodedLineSize(text);
    // Backpressure promises never reject: a shipping failure is thrown by the next call instead.
    if (this.pendingBytes >= this.settings.chunkMaxBytes) return this.flush().catch(() => undefined);
    this.timer ??= setTimeout(() => void this.flush().catch(() => undefined), this.settings.chunkMaxDelayMs);
    return undefined;
  }

  system(text: string, ts = Date.now()): Promise<void> {
    void this.line(LogStream.System, Buffer.from(text), ts);
    return this.flush();
  }

  /** Ships every queued line, then the event, in that order. */
  async status(event: StatusEvent): Promise<void> {
    await this.flush();
    await this.enqueue(async () => {
      await this.redis.xadd(this.streamKey, '*', STATUS_FIELDS.type, StreamEntryType.Status, STATUS_FIELDS.event, JSON.stringify(event));
    });
  }

  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.pending.length === 0) return this.enqueue(async () => undefined);
    const lines = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    return this.enqueue(() => this.ship(lines));
  }

  private enqueue(work: () => Promise<void>): Promise<void> {
    const run = this.chain.then(() => {
      if (this.failure) throw this.failure;
      return work();
    });
    this.chain = run.catch((err: Error) => {
      this.failure ??= err;
    });
    return run;
  }

  private async ship(lines: LogLine[]): Promise<void> {
    const reply = await this.redis
      .multi()
      .xadd(
        this.streamKey,
        '*',
        LINES_FIELDS.type,
        StreamEntryType.Lines,
        LINES_FIELDS.firstSeq,
        String(lines[0].seq),
        LINES_FIELDS.count,
        String(lines.length),
        LINES_FIELDS.data,
        encodeLines(lines),
      )
      .xlen(this.streamKey)
      .exec();
    let length = Number(reply?.[1]?.[1] ?? 0);
    // Backpressure: wait while the persister is behind. The container's pipe fills meanwhile.
    for (let delay = 5; length > this.settings.maxUnpersistedEntries; delay = Math.min(delay * 2, 100)) {
      await new Promise((r) => setTimeout(r, delay));
      length = await this.redis.xlen(this.streamKey);
    }
  }
}
