import type { Response } from 'express';
import { LogEntryView } from './log-entry.view';

/**
 * Where a client's bytes go: in the API, its response's socket, each write already framed as one
 * HTTP chunk (see {@link httpChunk}); in tests, anything that takes writes and says what it holds.
 */
export interface FeedSink {
  write(data: Buffer): boolean;
  readonly writableLength: number;
  on(event: 'drain', listener: () => void): unknown;
  off(event: 'drain', listener: () => void): unknown;
}

/** Turns events into the bytes written to every client: shared, so framed and encoded once. */
export type FeedEncoder = (events: string) => Buffer;

/** One HTTP/1.1 chunk (`size CRLF data CRLF`) of a chunked response, the framing Node's own `res.write` adds. */
export const httpChunk: FeedEncoder = (events) => {
  const size = Buffer.byteLength(events);
  const out = Buffer.allocUnsafe(size + 20);
  let at = out.write(`${size.toString(16)}\r\n`, 'latin1');
  at += out.write(events, at, 'utf8');
  at += out.write('\r\n', at, 'latin1');
  return out.subarray(0, at);
};

/** A run of consecutive lines as bytes to write, ending at `seq`. */
export interface FeedBatch {
  seq: number;
  data: Buffer;
}

/** How a job ended, as the `end` event tells it. */
export interface FeedEnd {
  status: string;
  exit_code: number | null;
  error_code: string | null;
}

/** One line, serialised once as its SSE event and shared by every client of the feed. */
export interface FeedLine {
  seq: number;
  event: string;
}

/** Stored lines after a seq, at most `max` (the log file, through its index). */
export type FileReader = (afterSeq: number, max: number) => Promise<LogEntryView[]>;

export interface FeedLimits {
  /** Bytes a client may have waiting in its socket before it stops being fed live. */
  clientBufferBytes: number;
  /** Recent lines kept in memory for clients that are a little behind. */
  ringLines: number;
  ringBytes: number;
  /** A client that cannot advance (its lines neither in memory nor yet in the file) this long is closed. */
  catchUpStallMs: number;
  /**
   * From this many clients on, live writes to them go at most once per `coalesceMs`, each with
   * every line since the last: a write is a system call per client, and at 1,000 viewers one per
   * stream chunk was more than a core (measured). Below it, every chunk is written at once.
   * When one round of writes itself takes more than half of `coalesceMs` of CPU (a loaded machine:
   * a loopback write costs tens of µs), the next waits twice that: writing to viewers never takes
   * more than half of the API's time, and what it saves goes out in fewer, larger writes. CPU
   * time, not wall-clock time: a round preempted midway by the other processes took 60–110 ms of
   * wall clock in the fan-out bench for a fraction of that in CPU, and waiting twice the wall
   * clock held every viewer's next lines that much longer, when the API was not the one busy.
   */
  coalesceClients?: number;
  coalesceMs?: number;
}

/** Stored-line reads kept for clients that come to the same seq: a thousand viewers behind together read the file once. */
const SHARED_READS = 8;

/** What the clients of every feed have done, for metrics and tests. */
export interface FeedCounters {
  /**
   * Live clients that fell behind (more than their buffer unsent, or lines trimmed from the stream
   * before this feed read them) and were fed from memory or the file at their own pace instead.
   */
  overflows: number;
  /** Clients closed with a reason (`error` event) rather than `end`. */
  failed: number;
  /** Told of each overflow and each failure as they happen (the API's prom-client metrics). */
  onOverflow?: (reason: 'buffer' | 'trimmed') => void;
  onFailed?: () => void;
}

export const DEFAULT_FEED_LIMITS: FeedLimits = {
  clientBufferBytes: 64 * 1024,
  ringLines: 20000,
  ringBytes: 8 * 1024 * 1024,
  catchUpStallMs: 30000,
  coalesceClients: 32,
  coalesceMs: 40,
};

const FILE_BATCH = 1000;
const FILE_RETRY_MS = 100;

export function lineEvent(e: LogEntryView): string {
  return `id: ${e.seq}\nevent: line\ndata: ${JSON.stringify(e)}\n\n`;
}

/**
 * The lines of one job for every SSE client of this API instance. It is fed by one reader (the
 * hub's) and keeps the most recent lines in a ring, each serialised once. A client is either
 * *live* (it has every line up to the feed's last one, or has them in its socket buffer) and is
 * written to as lines arrive, or *catching up*: new, resumed, or found with more than
 * `clientBufferBytes` unsent, it is fed from the ring or, further back, from the log file, at the
 * pace its socket drains, and rejoins the live clients once it has reached the last line. Nothing
 * a slow client does ever makes the feed or another client wait.
 */
export class JobFeed {
  readonly clients = new Set<FeedClient>();
  private ring: FeedLine[] = [];
  private ringBytes = 0;
  /** Last seq the feed has seen (0 before any). */
  lastSeq = 0;
  /**
   * Every line up to this seq is in the file, or was not kept: the stream is trimmed only behind
   * the persister, so lines the stream no longer had when the feed read past them were stored or,
   * in a `head_tail` log's gap, dropped. On such a log (`gaps`), a client whose file read finds
   * nothing before it skips them; on a `head` log nothing is dropped, and it waits for the file.
   */
  storedThrough = 0;
  /** The log may have a gap: the job's `log_keep` is `head_tail`. */
  gaps = false;
  /** Id of the last stream entry read. */
  streamId = '0-0';
  /** Set once the job has ended and every line is known: clients that reach `lastSeq` get `end`. */
  end?: FeedEnd;
  /** The job ended without a terminal stream entry seen: the file is the complete log, read it to its end. */
  fileComplete = false;
  /** Last non-terminal status seen on the stream, told to clients as it changes. */
  status?: string;
  /** Monotonic time of the last entry read (or of the feed's creation). */
  lastEntryAt = performance.now();
  /** The terminal entry has been read: the stream is not read any more; `end` waits for Postgres. */
  terminalSeen?: FeedEnd;
  /** Set while lines the stream lost are read from the file: what the stream brings meanwhile, in order. */
  private filling?: (() => void)[];
  /** Set while new lines wait for their coalesced write to the live clients. */
  private fanOutTimer?: NodeJS.Timeout;
  private lastFanOutAt = -Infinity;
  /** The CPU time the last round of live writes took (ms). */
  private lastFanOutCpuMs = 0;
  /** {@link catchUpBatch}'s batches by the seq they follow, valid until the ring changes. */
  private readonly catchUpBatches = new Map<number, FeedBatch>();
  /** {@link storedBatches}' reads by `after:max`: in flight, or done and full (a short read may grow). */
  private readonly storedReads = new Map<string, Promise<FeedBatch[]>>();

  constructor(
    readonly jobId: string,
    readonly readFile: FileReader,
    readonly limits: FeedLimits = DEFAULT_FEED_LIMITS,
    readonly counters: FeedCounters = { overflows: 0, failed: 0 },
    readonly encode: FeedEncoder = httpChunk,
  ) {}

  /** Seq of the oldest line in memory; every earlier line is in the file (or will be shortly). */
  get ringStart(): number {
    return this.ring.length ? this.ring[0].seq : this.lastSeq + 1;
  }

  /** Lines in memory after `afterSeq`, at most `max`. */
  ringAfter(afterSeq: number, max: number): FeedLine[] {
    const from = afterSeq + 1 - this.ringStart;
    return from < 0 ? [] : this.ring.slice(from, from + max);
  }

  /**
   * The lines in memory after `afterSeq` (there must be one), joined into one write of about
   * `clientBufferBytes` at most (at least one line), shared by every client catching up from the
   * same seq until the next lines arrive: clients that fell behind together are at the same seq,
   * and a thousand of them must not each hold a copy of the same batch.
   */
  catchUpBatch(afterSeq: number): FeedBatch {
    let batch = this.catchUpBatches.get(afterSeq);
    if (batch) return batch;
    const from = afterSeq + 1 - this.ringStart;
    let to = from;
    let bytes = 0;
    while (to < this.ring.length && (to === from || bytes + this.ring[to].event.length <= this.limits.clientBufferBytes)) {
      bytes += this.ring[to].event.length;
      to++;
    }
    const lines = this.ring.slice(from, to);
    batch = { seq: lines[lines.length - 1].seq, data: this.encode(lines.map((l) => l.event).join('')) };
    this.catchUpBatches.set(afterSeq, batch);
    return batch;
  }

  /**
   * Stored lines after `afterSeq` (at most `max`), as writes of about `clientBufferBytes` each.
   * Clients asking for the same lines share one read and its bytes: clients that fell behind
   * together stand at the same seq, and stay so, since each writes a whole read before the next.
   */
  storedBatches(afterSeq: number, max: number): Promise<FeedBatch[]> {
    const key = `${afterSeq}:${max}`;
    let read = this.storedReads.get(key);
    if (read) return read;
    read = this.readFile(afterSeq, max).then((entries) => {
      // Only a full read stays valid; a short one is the file's end so far and may grow.
      if (entries.length < max) this.storedReads.delete(key);
      const batches: FeedBatch[] = [];
      let events = '';
      for (let i = 0; i < entries.length; i++) {
        events += lineEvent(entries[i]);
        if (events.length < this.limits.clientBufferBytes && i < entries.length - 1) continue;
        batches.push({ seq: entries[i].seq, data: this.encode(events) });
        events = '';
      }
      return batches;
    });
    read.catch(() => this.storedReads.delete(key));
    this.storedReads.set(key, read);
    while (this.storedReads.size > SHARED_READS) this.storedReads.delete(this.storedReads.keys().next().value!);
    return read;
  }

  add(client: FeedClient): void {
    this.clients.add(client);
    if (this.status !== undefined) client.writeRaw(this.encode(`event: status\ndata: ${JSON.stringify({ status: this.status })}\n\n`));
    void client.catchUp();
  }

  /**
   * New lines from the stream, in order. A jump past `lastSeq` means the persister stored and
   * trimmed lines before this feed read them (a busy API reads the stream later than the
   * persister does): while a live client needs them, the feed reads them from the file once, and
   * what arrives meanwhile waits its turn, so that its clients stay live, not each catching up on
   * its own (measured: a thousand viewers fell behind together fifty times a minute). A gap the
   * file does not close (a `head_tail` log's dropped lines) restarts the ring.
   */
  push(lines: FeedLine[]): void {
    if (this.filling) return void this.filling.push(() => this.push(lines));
    const fresh = lines.filter((l) => l.seq > this.lastSeq);
    if (fresh.length === 0) return;
    const missing = fresh[0].seq - 1 - this.lastSeq;
    if (missing > 0 && this.lastSeq > 0 && missing <= this.limits.ringLines && [...this.clients].some((c) => c.live)) return this.fill(fresh, missing);
    this.append(fresh);
  }

  /** Reads the `missing` lines before `fresh` from the file into the ring, then applies `fresh` and what waited. */
  private fill(fresh: FeedLine[], missing: number): void {
    const waiting: (() => void)[] = [];
    this.filling = waiting;
    const from = this.lastSeq;
    this.readFile(from, missing)
      .catch(() => [] as LogEntryView[])
      .then((entries) => {
        this.filling = undefined;
        const stored: FeedLine[] = [];
        for (const e of entries) {
          if (e.seq !== from + 1 + stored.length || e.seq >= fresh[0].seq) break;
          stored.push({ seq: e.seq, event: lineEvent(e) });
        }
        if (stored.length) this.append(stored);
        this.append(fresh);
        while (waiting.length && !this.filling) waiting.shift()!();
        // A later jump started a fill of its own: the rest waits behind it, still in order.
        if (this.filling) (this.filling as (() => void)[]).push(...waiting);
      });
  }

  private append(fresh: FeedLine[]): void {
    this.catchUpBatches.clear();
    if (fresh[0].seq !== this.lastSeq + 1) {
      this.storedThrough = Math.max(this.storedThrough, fresh[0].seq - 1);
      this.ring = [];
      this.ringBytes = 0;
    }
    for (const l of fresh) {
      this.ring.push(l);
      this.ringBytes += l.event.length;
    }
    this.lastSeq = fresh[fresh.length - 1].seq;
    let drop = 0;
    while (drop < this.ring.length - 1 && (this.ring.length - drop > this.limits.ringLines || this.ringBytes > this.limits.ringBytes)) {
      this.ringBytes -= this.ring[drop].event.length;
      drop++;
    }
    if (drop) this.ring = this.ring.slice(drop);
    this.scheduleFanOut();
  }

  /** Writes the new lines to the live clients now, or (many clients) once `coalesceMs` has passed since the last time. */
  private scheduleFanOut(): void {
    if (this.fanOutTimer) return;
    const many = this.clients.size >= (this.limits.coalesceClients ?? Infinity);
    const due = many ? this.lastFanOutAt + Math.max(this.limits.coalesceMs ?? 0, 2 * this.lastFanOutCpuMs) - performance.now() : 0;
    if (due <= 0) return this.fanOut();
    this.fanOutTimer = setTimeout(() => this.fanOut(), due);
  }

  /** Every live client gets the lines it lacks; most stand at the same seq, so each batch is joined once. */
  private fanOut(): void {
    if (this.fanOutTimer) clearTimeout(this.fanOutTimer);
    this.fanOutTimer = undefined;
    this.lastFanOutAt = performance.now();
    const cpuBefore = process.cpuUsage();
    const batches = new Map<number, Buffer>();
    for (const c of this.clients) {
      if (!c.live || c.after >= this.lastSeq) continue;
      if (c.after + 1 < this.ringStart) {
        c.fallBehind('trimmed');
        continue;
      }
      let batch = batches.get(c.after);
      if (batch === undefined) {
        batch = this.encode(this.ringAfter(c.after, Infinity).map((l) => l.event).join(''));
        batches.set(c.after, batch);
      }
      c.sendLive(batch, this.lastSeq);
    }
    // The process's CPU counts every thread (GC helpers, the file reads of other clients): no more
    // than the round's wall-clock time is this thread's.
    const cpu = process.cpuUsage(cpuBefore);
    this.lastFanOutCpuMs = Math.min((cpu.user + cpu.system) / 1000, performance.now() - this.lastFanOutAt);
  }

  /** A client has gone; true when it was the last, and the feed is disposed. */
  remove(client: FeedClient): boolean {
    this.clients.delete(client);
    if (this.clients.size > 0) return false;
    this.dispose();
    return true;
  }

  /** The feed has no clients left: nothing of it may outlive them. */
  dispose(): void {
    if (this.fanOutTimer) clearTimeout(this.fanOutTimer);
    this.fanOutTimer = undefined;
  }

  statusChanged(status: string): void {
    if (this.filling) return void this.filling.push(() => this.statusChanged(status));
    if (this.status === status) return;
    // Lines still waiting for their write go first: the status comes after them on the stream.
    if (this.fanOutTimer) this.fanOut();
    this.status = status;
    const event = this.encode(`event: status\ndata: ${JSON.stringify({ status })}\n\n`);
    for (const c of this.clients) if (c.live) c.writeRaw(event);
  }

  /** The job has ended: clients that have every line get `end`; the others get it when they do. */
  finish(end: FeedEnd, fileComplete: boolean): void {
    if (this.filling) return void this.filling.push(() => this.finish(end, fileComplete));
    if (this.end) return;
    if (this.fanOutTimer) this.fanOut();
    this.end = end;
    this.fileComplete = fileComplete;
    for (const c of this.clients) void c.catchUp();
  }
}

/**
 * One SSE response. `after` is the last seq written to it (or sitting in its socket buffer). Its
 * bytes go to `sink` (the response's socket, in chunks framed by the feed, so that one batch is
 * one shared Buffer for every client, not a copy each through `res.write`); the response itself
 * is ended through `res`. Its listeners are removed and its wait cancelled when it closes:
 * nothing of it outlives the request.
 */
export class FeedClient {
  after: number;
  live = false;
  closed = false;
  private catching = false;
  private needDrain = false;
  private wake?: () => void;
  private retryTimer?: NodeJS.Timeout;
  private readonly onDrain = () => {
    this.needDrain = false;
    this.wake?.();
  };
  private readonly onClose = () => this.close();

  constructor(
    private readonly feed: JobFeed,
    private readonly res: Response,
    afterSeq: number,
    private readonly onGone: (c: FeedClient) => void,
    private readonly sink: FeedSink,
  ) {
    this.after = afterSeq;
    sink.on('drain', this.onDrain);
    res.on('close', this.onClose);
  }

  /** Heartbeats and status events, encoded by the feed: skipped while the socket is full (the client is behind anyway). */
  writeRaw(data: Buffer): void {
    if (this.closed || this.needDrain) return;
    if (!this.sink.write(data)) this.needDrain = true;
  }

  /** Live lines ending at `lastSeq`; past its buffer budget the client drops out of live and catches up. */
  sendLive(data: Buffer, lastSeq: number): void {
    if (this.closed) return;
    if (this.sink.writableLength > this.feed.limits.clientBufferBytes) return this.fallBehind('buffer');
    if (!this.sink.write(data)) this.needDrain = true;
    this.after = lastSeq;
  }

  /** Bytes written that the socket has not taken yet. */
  get buffered(): number {
    return this.closed ? 0 : this.sink.writableLength;
  }

  /** Out of live: from now on it is fed at its own pace until it has caught up. */
  fallBehind(reason: 'buffer' | 'trimmed'): void {
    this.feed.counters.overflows++;
    this.feed.counters.onOverflow?.(reason);
    this.live = false;
    void this.catchUp();
  }

  /**
   * Feeds the client from memory or the file, at the pace of its socket, until it has the feed's
   * last line; then it is live again, or, once the job has ended, gets `end` and is closed.
   */
  async catchUp(): Promise<void> {
    if (this.catching || this.closed) return;
    this.catching = true;
    this.live = false;
    let stuckSince: number | undefined;
    let emptyReads = 0;
    try {
      while (!this.closed) {
        if (this.needDrain) await new Promise<void>((r) => (this.wake = r));
        this.wake = undefined;
        if (this.closed) return;
        const feed = this.feed;
        if (!feed.fileComplete && this.after >= feed.lastSeq) {
          if (feed.lastSeq === 0) {
            // The feed has read no line yet: the stream may have been trimmed of every line it had
            // (an idle job, its last entry a status), and those are in the file.
            const stored = await feed.storedBatches(this.after, FILE_BATCH);
            if (this.closed) return;
            if (stored.length) {
              if (!(await this.writeStored(stored))) return;
              continue;
            }
          }
          if (feed.end) return this.sendEnd(feed.end);
          this.live = true;
          return;
        }
        if (!feed.fileComplete && this.after + 1 >= feed.ringStart) {
          const batch = feed.catchUpBatch(this.after);
          this.write(batch.data, batch.seq);
          stuckSince = undefined;
          continue;
        }
        const max = feed.fileComplete ? FILE_BATCH : Math.min(FILE_BATCH, feed.ringStart - 1 - this.after);
        const batch = await feed.storedBatches(this.after, max);
        if (this.closed) return;
        if (batch.length === 0) {
          if (feed.fileComplete) return this.sendEnd(feed.end!);
          // Twice nothing (not a tail segment read as it was rotated or composed away) before
          // lines known to be past the persister: a head_tail log's gap. Follow on after it.
          if (feed.gaps && this.after < feed.storedThrough && ++emptyReads >= 2) {
            this.after = feed.storedThrough;
            emptyReads = 0;
            stuckSince = undefined;
            continue;
          }
          // The persister has not written these lines yet and they are no longer in memory.
          stuckSince ??= performance.now();
          if (performance.now() - stuckSince > feed.limits.catchUpStallMs) {
            return this.fail('behind', `could not catch up after seq ${this.after}; reconnect to resume`);
          }
          await new Promise<void>((r) => {
            this.wake = r;
            this.retryTimer = setTimeout(r, FILE_RETRY_MS);
          });
          this.retryTimer = undefined;
          continue;
        }
        stuckSince = undefined;
        emptyReads = 0;
        if (!(await this.writeStored(batch))) return;
      }
    } catch (err) {
      this.fail('error', `stream interrupted (${(err as Error).message}); reconnect`);
    } finally {
      this.catching = false;
    }
  }

  /**
   * A stored read's writes (each about `clientBufferBytes`), waiting for the socket to drain
   * between them, so that a client catching up holds one such write unsent, not a whole read.
   * False once the client has closed.
   */
  private async writeStored(batches: FeedBatch[]): Promise<boolean> {
    for (let i = 0; i < batches.length; i++) {
      this.write(batches[i].data, batches[i].seq);
      if (this.needDrain && i < batches.length - 1) {
        await new Promise<void>((r) => (this.wake = r));
        this.wake = undefined;
      }
      if (this.closed) return false;
    }
    return true;
  }

  private write(data: Buffer, lastSeq: number): void {
    if (!this.sink.write(data)) this.needDrain = true;
    this.after = lastSeq;
  }

  private sendEnd(end: FeedEnd): void {
    this.sink.write(this.feed.encode(`id: ${this.after}\nevent: end\ndata: ${JSON.stringify(end)}\n\n`));
    this.close();
  }

  /** Closes with a reason the client can read: an `error` event, then the end of the response. */
  fail(reason: string, message: string): void {
    if (this.closed) return;
    this.feed.counters.failed++;
    this.feed.counters.onFailed?.();
    this.sink.write(this.feed.encode(`event: error\ndata: ${JSON.stringify({ reason, message })}\n\n`));
    this.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.live = false;
    clearTimeout(this.retryTimer);
    this.sink.off('drain', this.onDrain);
    this.res.off('close', this.onClose);
    this.wake?.();
    this.res.end();
    this.onGone(this);
  }
}
