import {
  isTerminal,
  LINES_FIELDS,
  LogLine,
  LogStream,
  STATUS_FIELDS,
  StatusEvent,
  StreamEntryType,
} from '@flashpods/contracts';
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
 * How far a job's log has been shipped, written atomically with each chunk. A runner that
 * restarts resumes from here: it replays the container's output from Docker's own log and skips
 * the first `stdout`/`stderr` lines, which were already shipped.
 */
export interface ShipProgress {
  seq: number;
  stdout: number;
  stderr: number;
  bytes: number;
  truncated: boolean;
}

export const NO_PROGRESS: ShipProgress = { seq: 0, stdout: 0, stderr: 0, bytes: 0, truncated: false };

export function parseProgress(hash: Record<string, string>): ShipProgress {
  if (!hash.seq) return { ...NO_PROGRESS };
  return {
    seq: Number(hash.seq),
    stdout: Number(hash.stdout ?? 0),
    stderr: Number(hash.stderr ?? 0),
    bytes: Number(hash.bytes ?? 0),
    truncated: hash.truncated === '1',
  };
}

interface Pending extends LogLine {
  /** The publisher's counters right after this line was queued: the progress once it is shipped. */
  after: ShipProgress;
}

/**
 * Ships one job's lines, numbered on from `progress.seq`, to its Redis stream in chunks of at
 * most `chunkMaxBytes` or `chunkMaxDelayMs`, and status events in order with them. Writes are
 * serialised, so the stream holds lines and events in the order they were produced.
 */
export class JobLogPublisher {
  private pending: Pending[] = [];
  private pendingBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  private failure: Error | undefined;
  /** Counters as lines are queued; a chunk records those of its last line when it is shipped. */
  private queued: ShipProgress;

  constructor(
    private readonly redis: Redis,
    private readonly streamKey: string,
    private readonly progressKey: string,
    private readonly settings: PublisherSettings,
    progress: ShipProgress = NO_PROGRESS,
  ) {
    this.queued = { ...progress };
  }

  get lastSeq(): number {
    return this.queued.seq;
  }

  get isTruncated(): boolean {
    return this.queued.truncated;
  }

  /**
   * Queues a line; the returned promise (when there is one) settles once the chunk is shipped.
   * The cap is applied here, at the source, with the persister's rule, so that live readers and
   * the file see the same lines: the line that would pass it becomes the marker, later ones are
   * dropped (the workload keeps running and its output keeps being drained).
   */
  line(stream: LogStream, text: Buffer, ts: number): Promise<void> | undefined {
    if (this.failure) throw this.failure;
    const q = this.queued;
    if (stream === LogStream.Stdout) q.stdout++;
    else if (stream === LogStream.Stderr) q.stderr++;
    if (q.truncated) return undefined;
    const size = storedLineBytes(text);
    if (q.bytes + size > this.settings.logMaxBytes) {
      q.truncated = true;
      stream = LogStream.System;
      text = Buffer.from(truncationMarkerText(this.settings.logMaxBytes));
    }
    q.bytes += size;
    q.seq++;
    this.pending.push({ seq: q.seq, ts, stream, text, after: { ...q } });
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

  /** Ships every queued line, then the event, in that order. A terminal event ends the progress record. */
  async status(event: StatusEvent): Promise<void> {
    await this.flush();
    await this.enqueue(async () => {
      const tx = this.redis
        .multi()
        .xadd(this.streamKey, '*', STATUS_FIELDS.type, StreamEntryType.Status, STATUS_FIELDS.event, JSON.stringify(event));
      if (isTerminal(event.status)) tx.del(this.progressKey);
      await tx.exec();
    });
  }

  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const lines = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    // With nothing queued this still waits for the chunks already on their way.
    return this.enqueue(() => (lines.length ? this.ship(lines) : Promise.resolve()));
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

  private async ship(lines: Pending[]): Promise<void> {
    const p = lines[lines.length - 1].after;
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
      .hset(this.progressKey, { seq: p.seq, stdout: p.stdout, stderr: p.stderr, bytes: p.bytes, truncated: p.truncated ? '1' : '0' })
      .xlen(this.streamKey)
      .exec();
    let length = Number(reply?.[2]?.[1] ?? 0);
    // Backpressure: wait while the persister is behind. The container's pipe fills meanwhile.
    for (let delay = 5; length > this.settings.maxUnpersistedEntries; delay = Math.min(delay * 2, 100)) {
      await new Promise((r) => setTimeout(r, delay));
      length = await this.redis.xlen(this.streamKey);
    }
  }
}
