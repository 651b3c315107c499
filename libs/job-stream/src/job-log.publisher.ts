import { isTerminal, LogKeep, LogStream, RedisKeys, StatusEvent } from '@flashpods/contracts';
import { LINE_HEADER_BYTES, storedLineBytes, truncationMarkerText } from '@flashpods/log-format';
import type { Cluster, Redis } from 'ioredis';
import { performance } from 'node:perf_hooks';
import { FENCE_KEEP_SECONDS, fenced, FencedError, isFenced } from './stream-fence';

export interface PublisherSettings {
  /** LOG_MAX_BYTES: the line that would take the stored log past this becomes the marker. */
  logMaxBytes: number;
  /**
   * The job's `log_keep`. `head` (the default) applies the cap here, at the source. `head_tail`
   * ships every line (live readers see them all) and leaves what is kept to the persister.
   */
  logKeep?: LogKeep;
  chunkMaxBytes: number;
  chunkMaxDelayMs: number;
  /** Entries the persister has not yet trimmed; above this the publisher waits (backpressure). */
  maxUnpersistedEntries: number;
  /** Told what the publisher does, for metrics (the runner's); carried over to a successor publisher. */
  observer?: PublisherObserver;
}

/** What a publisher reports as it goes. Calls are synchronous and must not throw. */
export interface PublisherObserver {
  /** A chunk Redis acknowledged: its lines (system lines and the marker included) and encoded bytes. */
  chunkShipped(lines: number, bytes: number): void;
  /** A full chunk found the chunk before it still on its way: the caller had to stop reading. */
  backpressureWait(): void;
  /** The stream held more than `maxUnpersistedEntries` (the persister is behind): waited this long. */
  streamFullWait(seconds: number): void;
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
  /** Stored size of the lines shipped so far (for `head`, up to the cap; for `head_tail`, all of them). */
  bytes: number;
  /** The cap was reached at the source (`head` only: a `head_tail` publisher never truncates). */
  truncated: boolean;
  /** Time (ms since the epoch) of the last output line queued; 0 before any. Where a gap begins. */
  ts: number;
}

export const NO_PROGRESS: ShipProgress = { seq: 0, stdout: 0, stderr: 0, bytes: 0, truncated: false, ts: 0 };

export function parseProgress(hash: Record<string, string>): ShipProgress {
  if (!hash.seq) return { ...NO_PROGRESS };
  return {
    seq: Number(hash.seq),
    stdout: Number(hash.stdout ?? 0),
    stderr: Number(hash.stderr ?? 0),
    bytes: Number(hash.bytes ?? 0),
    truncated: hash.truncated === '1',
    ts: Number(hash.ts ?? 0),
  };
}

/** Where a publisher writes and with which token (see stream-fence.ts). */
export interface PublisherTarget {
  keys: RedisKeys;
  jobId: string;
  token: string;
}

const POOL_SIZE = 4;

// Bound once at load: a name imported from a package's index is read through a getter on each use
// (how TypeScript compiles re-exports), and line() and encode() run for every line.
const HEADER_BYTES = LINE_HEADER_BYTES;
const storedBytes = storedLineBytes;
const STDOUT = LogStream.Stdout;
const STDERR = LogStream.Stderr;
const SYSTEM = LogStream.System;
const HEAD_TAIL = LogKeep.HeadTail;

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
  /** Holds a gap line (see LINES_FIELDS.gap). */
  gap: boolean;
}

/**
 * Ships one job's lines, numbered on from `progress.seq`, to its Redis stream in chunks of at
 * most `chunkMaxBytes` or `chunkMaxDelayMs` (at most one chunk per delay unless they are full),
 * and status events in order with them. Writes are serialised, so the stream holds lines and
 * events in the order they were produced; each one is fenced, so only the stream's current holder
 * gets through.
 *
 * Backpressure: at most one chunk is on its way while the next one is built. When a chunk is
 * full, `line()` returns a promise that settles once the chunk before it has been shipped and the
 * stream has room (at most `maxUnpersistedEntries` entries not yet trimmed by the persister); the
 * caller stops reading until then. Memory is therefore bounded by about three chunks per job.
 */
export class JobLogPublisher {
  /** Lines are encoded straight into this buffer as they come: no copy or object per line. */
  private buf: Buffer;
  private bufLen = 0;
  private bufCount = 0;
  private bufFirstSeq = 0;
  /** The chunk being built holds a gap line. */
  private bufGap = false;
  /** Chunk buffers Redis has acknowledged, reused rather than left to the GC (bounds the RSS). */
  private readonly pool: Buffer[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** When the last chunk was closed and sent (performance.now()). */
  private lastTakenAt = -Infinity;
  private chain: Promise<void> = Promise.resolve();
  /** The ship of the last full chunk: what the next full chunk waits for. */
  private lastShip: Promise<void> = Promise.resolve();
  private failure: Error | undefined;
  /** Counters as lines are queued; a chunk records those of its last line when it is shipped. */
  private queued: ShipProgress;
  /** Counters of the last chunk Redis acknowledged. */
  private acked: ShipProgress;
  private readonly redis: ReturnType<typeof fenced>;
  /** Full chunks handed to Redis and not yet acknowledged. */
  private shipsPending = 0;
  /** How many times a full chunk found the one before it still on its way, so the caller had to wait. */
  backpressureWaits = 0;

  constructor(
    redis: Redis | Cluster,
    private readonly target: PublisherTarget,
    readonly settings: PublisherSettings,
    progress: ShipProgress = NO_PROGRESS,
  ) {
    this.redis = fenced(redis);
    this.queued = { ...progress };
    this.acked = { ...progress };
    this.buf = Buffer.allocUnsafe(settings.chunkMaxBytes);
  }

  /** The fence token this publisher writes with. */
  get token(): string {
    return this.target.token;
  }

  get lastSeq(): number {
    return this.queued.seq;
  }

  get isTruncated(): boolean {
    return this.queued.truncated;
  }

  /** What Redis has acknowledged: where a new publisher continues after this one failed. */
  get shipped(): ShipProgress {
    return { ...this.acked };
  }

  /** The error that stopped this publisher, if any. */
  get failed(): Error | undefined {
    return this.failure;
  }

  /**
   * Queues a line. Throws once shipping has failed (the job must end). Returns a promise when the
   * caller should stop reading until it settles (see the class comment); it never rejects.
   * For `head`, the cap is applied here, at the source, with the persister's rule, so that live
   * readers and the file see the same lines: the line that would pass it becomes the marker, later
   * ones are dropped (the workload keeps running and its output keeps being drained). For
   * `head_tail` every line is shipped: the persister keeps the head and the tail.
   */
  line(stream: LogStream, text: Buffer, ts: number): Promise<void> | undefined {
    if (this.failure) throw this.failure;
    let wait: Promise<void> | undefined;
    // A chunk that cannot take this line (or the marker, if it becomes one) goes first, with the
    // counters as they are before this line: its recorded progress must not include it.
    if (this.bufCount > 0 && this.bufLen + HEADER_BYTES + text.length + MARKER_ROOM > this.buf.length) {
      wait = this.shipFull();
    }
    const q = this.queued;
    if (stream === STDOUT) q.stdout++;
    else if (stream === STDERR) q.stderr++;
    if (stream !== SYSTEM) q.ts = ts;
    if (q.truncated) return wait;
    const size = storedBytes(text.length);
    if (this.settings.logKeep !== HEAD_TAIL && q.bytes + size > this.settings.logMaxBytes) {
      q.truncated = true;
      stream = SYSTEM;
      text = Buffer.from(truncationMarkerText(this.settings.logMaxBytes));
    }
    q.bytes += size;
    q.seq++;
    this.encode(q.seq, ts, stream, text);
    if (this.bufLen + HEADER_BYTES + MARKER_ROOM >= this.buf.length) return this.shipFull() ?? wait;
    if (!this.timer) {
      // A line waits at most chunkMaxDelayMs, and none at all after a quiet spell: the chunk then
      // goes once the read it came in is encoded (the next turn of the event loop), so a slow job's
      // lines reach live readers at once and a busy one's still travel many to a chunk.
      const due = this.lastTakenAt + this.settings.chunkMaxDelayMs - performance.now();
      this.timer = setTimeout(() => void this.flush().catch(() => undefined), Math.max(0, due));
    }
    return wait;
  }

  /** Queues a lifecycle line and ships it with everything before it. */
  system(text: string, ts = Date.now()): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    void this.line(LogStream.System, Buffer.from(text), ts);
    return this.flush();
  }

  /**
   * Queues the system line that marks a gap (output that was not captured) and ships it in a
   * chunk flagged as such, so the persister sets the job's `log_lines_lost` with the very entry
   * that carries the line. Past the cap of a `head` log the line is dropped like any other, and
   * so is the flag: no line the stored log would have kept is missing.
   */
  gap(text: string, ts = Date.now()): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    const before = this.queued.seq;
    void this.line(LogStream.System, Buffer.from(text), ts);
    if (this.queued.seq !== before) this.bufGap = true;
    return this.flush();
  }

  /** Ships every queued line, then the event, in that order. A terminal event ends the progress record. */
  async status(event: StatusEvent): Promise<void> {
    await this.flush();
    const { keys, jobId, token } = this.target;
    await this.enqueue(async () => {
      await this.redis
        .fpStatus(
          keys.jobStreamOwner(jobId), keys.jobLog(jobId), keys.jobProgress(jobId), keys.jobStreamFence(jobId),
          token, JSON.stringify(event), isTerminal(event.status) ? '1' : '0', FENCE_KEEP_SECONDS,
        )
        .catch((err: Error) => {
          throw isFenced(err) ? new FencedError(jobId) : err;
        });
    });
  }

  /** Ships what is queued; settles when every chunk queued so far is in Redis. */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const chunk = this.take();
    // With nothing queued this still waits for the chunks already on their way.
    return this.enqueue(() => (chunk ? this.ship(chunk) : Promise.resolve()));
  }

  /** Sends the chunk being built; returns what the caller must wait for: the chunk sent before it. */
  private shipFull(): Promise<void> | undefined {
    const full = this.take();
    if (!full) return undefined;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const previous = this.lastShip;
    if (this.shipsPending > 0) this.backpressureWaits++;
    if (this.shipsPending > 0) this.settings.observer?.backpressureWait();
    this.shipsPending++;
    this.lastShip = this.enqueue(() => this.ship(full))
      .catch(() => undefined)
      .finally(() => this.shipsPending--);
    return previous;
  }

  /** Appends one line (chunk codec format) to the chunk being built; `line()` made room. */
  private encode(seq: number, ts: number, stream: LogStream, text: Buffer): void {
    const need = HEADER_BYTES + text.length;
    if (this.bufLen + need > this.buf.length) {
      // Only a line longer than a whole chunk gets here, into an empty chunk of its own size.
      const bigger = Buffer.allocUnsafe(this.bufLen + need + MARKER_ROOM);
      this.buf.copy(bigger, 0, 0, this.bufLen);
      this.buf = bigger;
    }
    if (this.bufCount === 0) this.bufFirstSeq = seq;
    const b = this.buf;
    const at = this.bufLen;
    b[at] = stream;
    b.writeDoubleBE(ts, at + 1);
    b.writeUInt32BE(text.length, at + 9);
    text.copy(b, at + HEADER_BYTES);
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
      gap: this.bufGap,
    };
    this.buf = this.pool.pop() ?? Buffer.allocUnsafe(this.settings.chunkMaxBytes);
    this.lastTakenAt = performance.now();
    this.bufLen = 0;
    this.bufCount = 0;
    this.bufGap = false;
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
    const { keys, jobId, token } = this.target;
    let length: number;
    try {
      length = await this.redis.fpShip(
        keys.jobStreamOwner(jobId), keys.jobLog(jobId), keys.jobProgress(jobId),
        token, chunk.firstSeq, chunk.count, chunk.data,
        p.seq, p.stdout, p.stderr, p.bytes, p.truncated ? '1' : '0', p.ts, chunk.gap ? '1' : '0',
      );
    } catch (err) {
      throw isFenced(err) ? new FencedError(jobId) : err;
    }
    this.acked = { ...p };
    this.settings.observer?.chunkShipped(chunk.count, chunk.data.length);
    // The reply is in: the command, and the chunk's bytes with it, are written and done with.
    if (chunk.backing.length === this.settings.chunkMaxBytes && this.pool.length < POOL_SIZE) this.pool.push(chunk.backing);
    // Backpressure: wait while the persister is behind. The container's pipe fills meanwhile.
    const full = length > this.settings.maxUnpersistedEntries ? performance.now() : undefined;
    for (let delay = 5; length > this.settings.maxUnpersistedEntries; delay = Math.min(delay * 2, 100)) {
      await new Promise((r) => setTimeout(r, delay));
      length = await this.redis.xlen(keys.jobLog(jobId));
    }
    if (full !== undefined) this.settings.observer?.streamFullWait((performance.now() - full) / 1000);
  }
}
