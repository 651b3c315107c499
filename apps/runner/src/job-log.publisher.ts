import {
  isTerminal,
  LINES_FIELDS,
  LogStream,
  STATUS_FIELDS,
  StatusEvent,
  StreamEntryType,
} from '@flashpods/contracts';
import { LINE_HEADER_BYTES, storedLineBytes, truncationMarkerText } from '@flashpods/log-format';
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

const POOL_SIZE = 4;

/** Room kept for the truncation marker, which may replace a shorter line. */
const MARKER_ROOM = 64;

/** A chunk on its way: encoded lines, and the publisher's counters right after its last line. */
interface Chunk {
  /** The whole buffer the chunk was built in, returned to the pool once shipped. */
  backing: Buffer;
  data: Buffer;
  firstSeq: number;
  count: number;
  after: ShipProgress;
}

/**
 * Ships one job's lines, numbered on from `progress.seq`, to its Redis stream in chunks of at
 * most `chunkMaxBytes` or `chunkMaxDelayMs`, and status events in order with them. Writes are
 * serialised, so the stream holds lines and events in the order they were produced.
 */
export class JobLogPublisher {
  /** Lines are encoded straight into this buffer as they come: no copy or object per line. */
  private buf: Buffer;
  private bufLen = 0;
  private bufCount = 0;
  private bufFirstSeq = 0;
  /** Chunk buffers Redis has acknowledged, reused rather than left to the GC (bounds the RSS). */
  private readonly pool: Buffer[] = [];
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
    this.buf = Buffer.allocUnsafe(settings.chunkMaxBytes);
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
    // A chunk that cannot take this line (or the marker, if it becomes one) goes first, with the
    // counters as they are before this line: its recorded progress must not include it.
    if (this.bufCount > 0 && this.bufLen + LINE_HEADER_BYTES + text.length + MARKER_ROOM > this.buf.length) {
      const full = this.take()!;
      void this.enqueue(() => this.ship(full)).catch(() => undefined);
    }
    const q = this.queued;
    if (stream === LogStream.Stdout) q.stdout++;
    else if (stream === LogStream.Stderr) q.stderr++;
    if (q.truncated) return undefined;
    const size = storedLineBytes(text.length);
    if (q.bytes + size > this.settings.logMaxBytes) {
      q.truncated = true;
      stream = LogStream.System;
      text = Buffer.from(truncationMarkerText(this.settings.logMaxBytes));
    }
    q.bytes += size;
    q.seq++;
    this.encode(q.seq, ts, stream, text);
    // Backpressure promises never reject: a shipping failure is thrown by the next call instead.
    if (this.bufLen >= this.settings.chunkMaxBytes) return this.flush().catch(() => undefined);
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
    const chunk = this.take();
    // With nothing queued this still waits for the chunks already on their way.
    return this.enqueue(() => (chunk ? this.ship(chunk) : Promise.resolve()));
  }

  /** Appends one line (chunk codec format) to the chunk being built; `line()` made room. */
  private encode(seq: number, ts: number, stream: LogStream, text: Buffer): void {
    const need = LINE_HEADER_BYTES + text.length;
    if (this.bufLen + need > this.buf.length) {
      // Only a line longer than a whole chunk gets here, into an empty chunk of its own size.
      const bigger = Buffer.allocUnsafe(this.bufLen + need);
      this.buf.copy(bigger, 0, 0, this.bufLen);
      this.buf = bigger;
    }
    if (this.bufCount === 0) this.bufFirstSeq = seq;
    const b = this.buf;
    let at = this.bufLen;
    b[at] = stream;
    b.writeDoubleBE(ts, at + 1);
    b.writeUInt32BE(text.length, at + 9);
    text.copy(b, at + LINE_HEADER_BYTES);
    this.bufLen = at + need;
    this.bufCount++;
  }

  /** The chunk built so far (with the counters as they stand, i.e. after its last line), and a fresh buffer. */
  private take(): Chunk | undefined {
    if (this.bufCount === 0) return undefined;
    const chunk: Chunk = {
      backing: this.buf,
      data: this.buf.subarray(0, this.bufLen),
      firstSeq: this.bufFirstSeq,
      count: this.bufCount,
      after: { ...this.queued },
    };
    this.buf = this.pool.pop() ?? Buffer.allocUnsafe(this.settings.chunkMaxBytes);
    this.bufLen = 0;
    this.bufCount = 0;
    return chunk;
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

  private async ship(chunk: Chunk): Promise<void> {
    const p = chunk.after;
    const reply = await this.redis
      .multi()
      .xadd(
        this.streamKey,
        '*',
        LINES_FIELDS.type,
        StreamEntryType.Lines,
        LINES_FIELDS.firstSeq,
        String(chunk.firstSeq),
        LINES_FIELDS.count,
        String(chunk.count),
        LINES_FIELDS.data,
        chunk.data,
      )
      .hset(this.progressKey, { seq: p.seq, stdout: p.stdout, stderr: p.stderr, bytes: p.bytes, truncated: p.truncated ? '1' : '0' })
      .xlen(this.streamKey)
      .exec();
    // The reply is in: the command, and the chunk's bytes with it, are written and done with.
    if (chunk.backing.length === this.settings.chunkMaxBytes && this.pool.length < POOL_SIZE) this.pool.push(chunk.backing);
    let length = Number(reply?.[2]?.[1] ?? 0);
    // Backpressure: wait while the persister is behind. The container's pipe fills meanwhile.
    for (let delay = 5; length > this.settings.maxUnpersistedEntries; delay = Math.min(delay * 2, 100)) {
      await new Promise((r) => setTimeout(r, delay));
      length = await this.redis.xlen(this.streamKey);
    }
  }
}
