import { Inject, Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import { CONFIG, createRedis, FlashpodsConfig, isCluster, REDIS_KEYS, RedisClient } from '@flashpods/config';
import { isTerminal, JobStatus, LogKeep, LINES_FIELDS, RedisKeys, STATUS_FIELDS, StatusEvent, StreamEntryType } from '@flashpods/contracts';
import { decodeLines, detectLevel, streamEntryFields } from '@flashpods/log-format';
import type { Request, Response } from 'express';
import { DataSource } from 'typeorm';
import type { JobEntity } from '@flashpods/database';
import { DEFAULT_FEED_LIMITS, FeedClient, FeedCounters, FeedEnd, FeedLimits, FeedLine, FeedSink, httpChunk, JobFeed, lineEvent } from './job-feed';
import { logEntryView } from './log-entry.view';
import { JobLogsService } from './job-logs.service';
import { apiMetrics } from '../health/api.metrics';
import { errorBody } from '../common/api-error-code';

const BLOCK_MS = 250;
const ENTRIES_PER_READ = 200;
/** How often the hub looks at its feeds (terminal entries waiting for Postgres, quiet jobs). */
const WATCH_MS = 100;
/** A live job whose stream gave nothing this long is looked up in Postgres (then every this often). */
const QUIET_MS = 3000;
/** After its terminal entry, `end` waits at most this long for the persister to store the job's end. */
const STORED_WAIT_MS = 10000;
/**
 * On a Redis Cluster each job's stream is in a slot of its own (its `{jobId}` hash tag) and one
 * XREAD must stay within a slot: the streams are read one XREAD each, sent together and none
 * blocking (a blocked read would hold up those queued behind it on that node's connection); when
 * none returned anything, this pause stands in for the block.
 */
const CLUSTER_IDLE_PAUSE_MS = 20;

type StreamReply = [Buffer, [Buffer, Buffer[]][]][] | null;

interface JobRow {
  status: JobStatus;
  exit_code: number | null;
  error_code: string | null;
  log_keep: LogKeep;
}

const endOf = (row: JobRow | undefined): FeedEnd => ({
  status: row?.status ?? 'deleted',
  exit_code: row?.exit_code ?? null,
  error_code: row?.error_code ?? null,
});
const ended = (row: JobRow | undefined) => row === undefined || isTerminal(row.status) || row.status === JobStatus.Cleaned;

/**
 * Where a client's events go once its headers and first chunk are written: straight to the
 * socket, each write one chunk the feed framed (and shared between clients). A response that is
 * not chunked (an HTTP/1.0 client) gets the chunks' contents without their framing.
 */
function socketSink(res: Response): FeedSink {
  const socket = res.socket!;
  if (res.chunkedEncoding) return socket;
  return {
    write: (data) => socket.write(data.subarray(data.indexOf('\r\n') + 2, data.length - 2)),
    get writableLength() {
      return socket.writableLength;
    },
    on: (event, listener) => socket.on(event, listener),
    off: (event, listener) => socket.off(event, listener),
  };
}

/**
 * Server-Sent Events for jobs: each line is an event whose id is its seq, then an `end` event with
 * the terminal status. In each API instance there is one {@link JobFeed} per job being watched,
 * whatever the number of its viewers, and one Redis connection reads the streams of every watched
 * job (one `XREAD` over all of them; on a Redis Cluster one per job, sent together): viewers cost memory and socket writes, never Redis
 * connections or reads. A job's status comes from its stream's own status entries; Postgres is
 * asked only once per client when it opens, when a job's terminal entry has been read (so that
 * `end` follows the stored end: read-your-writes), and for jobs whose stream has been quiet for
 * seconds (a pending job cancelled, a job ended in Postgres only).
 */
@Injectable()
export class LogStreamService implements OnModuleDestroy {
  private readonly log = new Logger(LogStreamService.name);
  private readonly feeds = new Map<string, JobFeed>();
  private readonly clients = new Set<FeedClient>();
  private readonly quietCheckedAt = new WeakMap<JobFeed, number>();
  private readonly terminalAt = new WeakMap<JobFeed, number>();
  private reader?: RedisClient;
  private reading?: Promise<void>;
  private heartbeat?: NodeJS.Timeout;
  private watcher?: NodeJS.Timeout;
  private watching = false;
  private stopped = false;
  private readonly limits: FeedLimits;
  readonly counters: FeedCounters = {
    overflows: 0,
    failed: 0,
    onOverflow: (reason) => apiMetrics.sseSlowClient(reason),
    onFailed: () => apiMetrics.sseFailed(),
  };

  constructor(
    @Inject(REDIS_KEYS) private readonly keys: RedisKeys,
    private readonly logs: JobLogsService,
    private readonly ds: DataSource,
    @Inject(CONFIG) private readonly config: FlashpodsConfig,
  ) {
    this.limits = { ...DEFAULT_FEED_LIMITS, clientBufferBytes: config.api.sseClientBufferBytes };
    apiMetrics.liveStats(() => this.stats);
  }

  /** Feeds and clients of this instance, for tests and metrics. */
  get stats(): { feeds: number; clients: number; bufferedBytes: number } {
    let bufferedBytes = 0;
    for (const c of this.clients) bufferedBytes += c.buffered;
    return { feeds: this.feeds.size, clients: this.clients.size, bufferedBytes };
  }

  /**
   * `resumed`: the client named where it was (`Last-Event-ID` or `after_seq`). Resuming a finished
   * job at or after its last line answers 204, which tells an EventSource to stop: the `end` event
   * carries the last seq as its id, so a client that does not close() after `end` is not sent it
   * again, and again, every `retry` interval.
   */
  async stream(job: Pick<JobEntity, 'id' | 'status' | 'exitCode' | 'errorCode' | 'logKeep'>, afterSeq: number, resumed: boolean, req: Request, res: Response): Promise<void> {
    // The row the request's own lookup just read: one query per viewer that opens, not two (a
    // thousand opening at once queue on the connection pool).
    const jobId = job.id;
    const row: JobRow = { status: job.status, exit_code: job.exitCode, error_code: job.errorCode, log_keep: job.logKeep };
    const done = ended(row);
    if (resumed && done && (await this.logs.after(jobId, afterSeq, 1)).length === 0) {
      res.status(204).end();
      return;
    }
    if (this.stopped) {
      // A documented 503 (`service_unavailable`, with Retry-After), like the API's other retryable answers.
      res.status(503).setHeader('Retry-After', '1').json(errorBody('service_unavailable', 'this API instance is stopping; retry'));
      return;
    }
    if (req.socket.destroyed) return;
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    // HEAD: the headers a GET would get, and no body (events go straight to the socket, which a
    // response that must have no body would not stop).
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    res.write('retry: 1000\n\n');
    let feed: JobFeed;
    if (done) {
      // Ended and stored: the file is the whole log. A feed of its own, read from the file only.
      feed = new JobFeed(jobId, (after, max) => this.logs.after(jobId, after, max), this.limits, this.counters);
      feed.finish(endOf(row), true);
    } else {
      feed = this.feedOf(jobId, row.log_keep === LogKeep.HeadTail);
    }
    const closeMetric = apiMetrics.sseOpened();
    const client = new FeedClient(
      feed,
      res,
      afterSeq,
      (c) => {
        closeMetric();
        this.gone(feed, c);
      },
      socketSink(res),
    );
    this.clients.add(client);
    this.startTimers();
    feed.add(client);
  }

  onModuleDestroy(): void {
    this.stopped = true;
    for (const c of [...this.clients]) c.close();
    this.stopTimers();
    this.reader?.disconnect();
  }

  /** `gaps`: the job's log is `head_tail`, whose gap a client catching up from the file skips. */
  private feedOf(jobId: string, gaps: boolean): JobFeed {
    let feed = this.feeds.get(jobId);
    if (!feed) {
      feed = new JobFeed(jobId, (after, max) => this.logs.after(jobId, after, max), this.limits, this.counters);
      feed.gaps = gaps;
      this.feeds.set(jobId, feed);
      this.quietCheckedAt.set(feed, performance.now());
    }
    this.startReading();
    return feed;
  }

  private gone(feed: JobFeed, client: FeedClient): void {
    this.clients.delete(client);
    if (feed.remove(client) && this.feeds.get(feed.jobId) === feed) this.feeds.delete(feed.jobId);
    if (this.clients.size === 0) this.stopTimers();
  }

  private startReading(): void {
    if (this.reading || this.stopped) return;
    // Blocking reads need a connection of their own: one for all the jobs this instance watches.
    this.reader ??= createRedis(this.config, 'api-live', {
      connectionName: `flashpods:${this.config.redis.prefix}:api-live`,
      commandTimeout: BLOCK_MS + 5000,
    });
    this.reading = this.readLoop().finally(() => {
      this.reading = undefined;
      if ([...this.feeds.values()].some((f) => this.followed(f)) && !this.stopped) this.startReading();
    });
  }

  private followed(feed: JobFeed): boolean {
    return !feed.end && !feed.terminalSeen;
  }

  private async readLoop(): Promise<void> {
    while (!this.stopped) {
      const feeds = [...this.feeds.values()].filter((f) => this.followed(f));
      if (feeds.length === 0) return;
      let reply: NonNullable<StreamReply>;
      try {
        reply = await this.readStreams(this.reader!, feeds);
      } catch (err) {
        if (this.stopped) return;
        this.log.warn(`reading job streams: ${(err as Error).message}; retrying`);
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      for (const [key, entries] of reply) {
        const jobId = this.keys.jobIdOfLogKey(key.toString());
        const feed = jobId === undefined ? undefined : this.feeds.get(jobId);
        if (feed && this.followed(feed)) this.apply(feed, entries);
      }
    }
  }

  /**
   * Up to ENTRIES_PER_READ entries of each feed's stream after the feed's last entry: one XREAD
   * blocking up to BLOCK_MS over every stream on one server; on a cluster, one XREAD per stream
   * (see CLUSTER_IDLE_PAUSE_MS). A stream whose read failed on a cluster is read again next time.
   */
  private async readStreams(reader: RedisClient, feeds: JobFeed[]): Promise<NonNullable<StreamReply>> {
    if (!isCluster(reader)) {
      const reply = (await reader.xreadBuffer(
        'COUNT', ENTRIES_PER_READ, 'BLOCK', BLOCK_MS,
        'STREAMS', ...feeds.map((f) => this.keys.jobLog(f.jobId)), ...feeds.map((f) => f.streamId),
      )) as StreamReply;
      return reply ?? [];
    }
    const settled = await Promise.allSettled(
      feeds.map((f) => reader.xreadBuffer('COUNT', ENTRIES_PER_READ, 'STREAMS', this.keys.jobLog(f.jobId), f.streamId) as Promise<StreamReply>),
    );
    const reply = settled.flatMap((r) => (r.status === 'fulfilled' ? (r.value ?? []) : []));
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed && reply.length === 0) throw failed.reason;
    if (failed) this.log.warn(`reading a job stream: ${(failed.reason as Error).message}; reading it again`);
    if (reply.length === 0) await new Promise((r) => setTimeout(r, CLUSTER_IDLE_PAUSE_MS));
    return reply;
  }

  /** Stream entries in order: lines go to the feed, status entries change or end it. */
  private apply(feed: JobFeed, entries: [Buffer, Buffer[]][]): void {
    feed.lastEntryAt = performance.now();
    let lines: FeedLine[] = [];
    for (const [rawId, raw] of entries) {
      feed.streamId = rawId.toString();
      const fields = streamEntryFields(raw);
      const type = fields.get(LINES_FIELDS.type)?.toString();
      if (type === StreamEntryType.Lines) {
        for (const l of decodeLines(fields.get(LINES_FIELDS.data)!, Number(fields.get(LINES_FIELDS.firstSeq)))) {
          const view = logEntryView(l.seq, l.ts, l.stream, detectLevel(l.stream, l.text), l.text.toString('utf8'));
          lines.push({ seq: l.seq, event: lineEvent(view) });
        }
      } else if (type === StreamEntryType.Status) {
        feed.push(lines);
        lines = [];
        const event = JSON.parse(fields.get(STATUS_FIELDS.event)!.toString()) as StatusEvent;
        if (isTerminal(event.status)) {
          feed.terminalSeen = { status: event.status, exit_code: event.exitCode ?? null, error_code: event.error?.code ?? null };
          this.terminalAt.set(feed, performance.now());
          break;
        }
        feed.statusChanged(event.status);
      }
    }
    feed.push(lines);
  }

  private startTimers(): void {
    this.heartbeat ??= setInterval(() => {
      const ping = httpChunk(': ping\n\n');
      for (const c of this.clients) c.writeRaw(ping);
    }, this.config.api.sseHeartbeatMs);
    this.watcher ??= setInterval(() => {
      if (this.watching) return;
      this.watching = true;
      this.watch()
        .catch((err) => this.log.warn(`looking up watched jobs: ${(err as Error).message}`))
        .finally(() => (this.watching = false));
    }, WATCH_MS);
  }

  private stopTimers(): void {
    clearInterval(this.heartbeat);
    clearInterval(this.watcher);
    this.heartbeat = undefined;
    this.watcher = undefined;
  }

  /**
   * Ends feeds whose end is known: a terminal entry read, once Postgres has it too (or after
   * `STORED_WAIT_MS`, from the entry alone); a quiet job that Postgres shows ended (or gone), in
   * which case the file is complete and is what its clients read to the end.
   */
  private async watch(): Promise<void> {
    const now = performance.now();
    const due = [...this.feeds.values()].filter(
      (f) => !f.end && (f.terminalSeen || (now - f.lastEntryAt > QUIET_MS && now - (this.quietCheckedAt.get(f) ?? 0) > QUIET_MS)),
    );
    if (due.length === 0) return;
    for (const f of due) if (!f.terminalSeen) this.quietCheckedAt.set(f, now);
    const rows: (JobRow & { id: string })[] = await this.ds.query(
      'SELECT id, status, exit_code, error_code, log_keep FROM jobs WHERE id = ANY($1::uuid[])',
      [due.map((f) => f.jobId)],
    );
    const byId = new Map(rows.map((r) => [r.id, r]));
    for (const feed of due) {
      if (feed.end) continue;
      const row = byId.get(feed.jobId);
      if (feed.terminalSeen) {
        if (ended(row)) feed.finish(endOf(row), false);
        else if (performance.now() - (this.terminalAt.get(feed) ?? 0) > STORED_WAIT_MS) feed.finish(feed.terminalSeen, false);
      } else if (ended(row)) {
        feed.finish(endOf(row), true);
      }
    }
  }

}
