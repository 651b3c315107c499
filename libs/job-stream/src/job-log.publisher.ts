import { isTerminal, LogKeep, LogStream, RedisKeys, StatusEvent } from '@flashpods/contracts';
import { bytesOf, LINE_HEADER_BYTES, storedLineBytes, truncationMarkerText, viewOf } from '@flashpods/log-format';
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
  /** Two chunks were on their way (the persister or Redis behind): the caller was told to stop reading. */
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

/**
 * Chunks taken and not yet settled (the one Redis is writing, or that found the stream full and
 * waits for room, and the next one, queued behind it). A line that finds this many on their way
 * is told to wait.
 */
const MAX_ON_THEIR_WAY = 2;

const RESOLVED: Promise<void> = Promise.resolve();
const ignore = (): void => undefined;

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
 * Backpressure: a chunk is settled once Redis has acknowledged it and the stream has room (at most
 * `maxUnpersistedEntries` entries not yet trimmed by the persister). A full chunk, or any line once
 * two chunks are on their way (taken, not yet settled), makes `line()` return a promise that
 * settles when at most one is left, and the caller stops reading until then. The timer never adds
 * one: when it finds a chunk on its way, the chunk being built goes once that one has settled.
 * So two chunks are on their way while a third is built; a caller that finishes handing over the
 * read it is in before it waits (the executors do) may fill one more. Memory is therefore bounded
 * by a few chunk buffers per job (a line longer than a chunk has one of its own size), however far
 * behind the persister is. `system()` and `gap()` ship their chunk at once; their callers wait on
 * the promise they return.
 */
export class JobLogPublisher {
  /** Lines are encoded straight into this buffer as they come: no copy or object per line. */
  private buf: Buffer;
  /** Over `buf`, for the line headers: a DataView's stores compile to a store, Buffer's writers check and loop. */
  private view: DataView;
  private bufLen = 0;
  private bufCount = 0;
  private bufFirstSeq = 0;
  /** The chunk being built holds a gap line. */
  private bufGap = false;
  /** Chunk buffers Redis has acknowledged, reused rather than left to the GC (bounds the RSS). */
  private readonly pool: Buffer[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** The timer found a chunk on its way: the chunk being built goes once that one has settled. */
  private timerDeferred = false;
  /** When the last chunk was closed and sent (performance.now()). */
  private lastTakenAt = -Infinity;
  private chain: Promise<void> = Promise.resolve();
  /** Chunks taken and not yet settled, oldest first: each one's settling (never rejects). */
  private readonly onTheirWay: Promise<void>[] = [];
  private failure: Error | undefined;
  /** Counters as lines are queued; a chunk records those of its last line when it is shipped. */
  private queued: ShipProgress;
  /** Counters of the last chunk Redis acknowledged. */
  private acked: ShipProgress;
  private readonly redis: ReturnType<typeof fenced>;
  /** The last wait handed out by `line()`. */
  private lastWait: Promise<void> | undefined;
  /** How many times `line()` found two chunks on their way, so the caller had to stop reading. */
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
    this.view = viewOf(this.buf);
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

  /** Chunks taken and not yet settled (see the class comment): two at most for a caller that waits when told to. */
  get chunksOnTheirWay(): number {
    return this.onTheirWay.length;
  }

  /**
   * Queues a line. Throws once shipping has failed (the job must end). Returns a promise when the
   * caller should stop reading until it settles (see the class comment); it never rejects.
   * For `head`, the cap is applied here, at the source, with the persister's rule, so that live
   * readers and the file see the same lines: the line that would pass it becomes the marker, later
   * ones are dropped (the workload keeps running and its output keeps being drained). For
   * `head_tail` every line is shipped: the persister keeps the head and the tail.
   */
  line(stream: LogStream, text: Buffer, ts: number, start = 0, end = text.length): Promise<void> | undefined {
    // Checked before anything is counted: the copy reads the Buffer's memory without bounds of its
    // own (a range past its end would ship the bytes of the allocation pool beyond it).
    if (!(0 <= start && start <= end && end <= text.length)) throw new RangeError(`line range [${start}, ${end}) outside a buffer of ${text.length} bytes`);
    return this.add(stream, text, start, end, ts, false);
  }

  /** Queues a lifecycle line and ships it with everything before it. */
  system(text: string, ts = Date.now()): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    const bytes = Buffer.from(text);
    void this.add(SYSTEM, bytes, 0, bytes.length, ts, false);
    return this.flush();
  }

  /**
   * Queues the system line that marks a gap (output that was not captured) and ships it in a
   * chunk flagged as such, so the persister sets the job's `log_lines_lost` with the very entry
   * that carries the line (and no other). What is queued goes first, unflagged; the flag is set
   * as the line is encoded, before anything can ship its chunk. In a `head` log the flag goes only
   * with the gap line itself: past the cap the line is dropped like any other, and when it is the
   * line that reaches the cap the marker takes its place; either way no flag, as no gap line is
   * stored (see the README's fast mode: what can then be missing).
   */
  gap(text: string, ts = Date.now()): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    this.send();
    const bytes = Buffer.from(text);
    void this.add(SYSTEM, bytes, 0, bytes.length, ts, true);
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
    // With nothing queued this still waits for the chunks already on their way.
    return this.send() ?? this.enqueue(() => Promise.resolve());
  }

  /**
   * Queues a line (see `line()`); a `gap` line flags its chunk, unless the cap turned it into the
   * marker. The line is `text[start, end)`. Returns what the caller must wait for.
   */
  private add(stream: LogStream, text: Buffer, start: number, end: number, ts: number, gap: boolean): Promise<void> | undefined {
    if (this.failure) throw this.failure;
    let full = false;
    // A chunk that cannot take this line (or the marker, if it becomes one) goes first, with the
    // counters as they are before this line: its recorded progress must not include it.
    if (this.bufCount > 0 && this.bufLen + HEADER_BYTES + (end - start) + MARKER_ROOM > this.buf.length) {
      this.send();
      full = true;
    }
    const q = this.queued;
    if (stream === STDOUT) q.stdout++;
    else if (stream === STDERR) q.stderr++;
    if (stream !== SYSTEM) q.ts = ts;
    if (q.truncated) return this.waitFor(full);
    const size = storedBytes(end - start);
    if (this.settings.logKeep !== HEAD_TAIL && q.bytes + size > this.settings.logMaxBytes) {
      q.truncated = true;
      stream = SYSTEM;
      text = Buffer.from(truncationMarkerText(this.settings.logMaxBytes));
      start = 0;
      end = text.length;
      gap = false;
    }
    q.bytes += size;
    q.seq++;
    this.encode(q.seq, ts, stream, text, start, end);
    if (gap) this.bufGap = true;
    if (this.bufLen + HEADER_BYTES + MARKER_ROOM >= this.buf.length) {
      this.send();
      full = true;
    } else if (!this.timer && !this.timerDeferred) {
      // A line waits at most chunkMaxDelayMs, and none at all after a quiet spell: the chunk then
      // goes once the read it came in is encoded (the next turn of the event loop), so a slow job's
      // lines reach live readers at once and a busy one's still travel many to a chunk.
      const due = this.lastTakenAt + this.settings.chunkMaxDelayMs - performance.now();
      this.timer = setTimeout(this.onTimer, Math.max(0, due));
    }
    return this.waitFor(full);
  }

  /**
   * What a caller of `line()` waits for: with the bound of chunks on their way reached, the
   * settling of the oldest it must see go; after a full chunk (nothing to wait for), a settled
   * promise, so that the caller still yields between chunks.
   */
  private waitFor(full: boolean): Promise<void> | undefined {
    const n = this.onTheirWay.length;
    if (n < MAX_ON_THEIR_WAY) return full ? RESOLVED : undefined;
    const wait = this.onTheirWay[n - MAX_ON_THEIR_WAY];
    // Counted once per pause, not for each line of the read the caller is finishing.
    if (wait !== this.lastWait) {
      this.lastWait = wait;
      this.backpressureWaits++;
      this.settings.observer?.backpressureWait();
    }
    return wait;
  }

  /**
   * The chunk's delay is up. It is taken only when no chunk is on its way: otherwise it goes once
   * the last one has settled (so a persister that is behind never makes the timer pile up chunks).
   */
  private readonly onTimer = (): void => {
    this.timer = undefined;
    const n = this.onTheirWay.length;
    if (n === 0) {
      this.flush().catch(ignore);
      return;
    }
    this.timerDeferred = true;
    void this.onTheirWay[n - 1].then(() => {
      // Cleared when the chunk was taken meanwhile (full, or flushed).
      if (!this.timerDeferred) return;
      this.timerDeferred = false;
      this.onTimer();
    });
  };

  /**
   * Takes the chunk being built, if any, and queues its ship; returns the ship (its rejection is
   * also handled here, so a caller may drop it).
   */
  private send(): Promise<void> | undefined {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.timerDeferred = false;
    const chunk = this.take();
    if (!chunk) return undefined;
    const run = this.enqueue(() => this.ship(chunk));
    const settled: Promise<void> = run.then(ignore, ignore).then(() => {
      this.onTheirWay.splice(this.onTheirWay.indexOf(settled), 1);
    });
    this.onTheirWay.push(settled);
    return run;
  }

  /** Appends one line, `text[start, end)` (chunk codec format), to the chunk being built; `line()` made room. */
  private encode(seq: number, ts: number, stream: LogStream, text: Buffer, start: number, end: number): void {
    const len = end - start;
    const need = HEADER_BYTES + len;
    if (this.bufLen + need > this.buf.length) {
      // Only a line longer than a whole chunk gets here, into an empty chunk of its own size.
      const bigger = Buffer.allocUnsafe(this.bufLen + need + MARKER_ROOM);
      this.buf.copy(bigger, 0, 0, this.bufLen);
      this.buf = bigger;
      this.view = viewOf(bigger);
    }
    if (this.bufCount === 0) this.bufFirstSeq = seq;
    const at = this.bufLen;
    const v = this.view;
    v.setUint8(at, stream);
    v.setFloat64(at + 1, ts);
    v.setUint32(at + 9, len);
    this.buf.set(bytesOf(text, start, end), at + HEADER_BYTES);
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
    this.view = viewOf(this.buf);
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
