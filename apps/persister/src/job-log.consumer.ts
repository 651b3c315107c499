import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { CONFIG, createRedis, FlashpodsConfig, isCluster, REDIS, REDIS_KEYS, RedisClient } from '@flashpods/config';
import {
  isTerminal,
  JobErrorCode,
  JobStatus,
  LINES_FIELDS,
  LogKeep,
  RedisKeys,
  STATUS_FIELDS,
  StatusEvent,
  StreamEntryType,
} from '@flashpods/contracts';
import { LogStats, transitionJobWithStats, writeLogStats, writeManyLogStats } from '@flashpods/database';
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { DataSource } from 'typeorm';
import { streamEntryFields } from '@flashpods/log-format';
import { EncodedChunk, LogFileWriter } from './log-file.writer';
import { Lease, PersisterLeases } from './persister-lease';
import { planRead } from './read-budget';
import { persisterMetrics } from './persister.metrics';

interface OwnedJob {
  jobId: string;
  /** Id of this job's entry in the `active` stream: pending on us while we own the job. */
  activeEntryId: string;
  lease: Lease;
  writer: LogFileWriter;
  /** Last entry of the job's stream applied; reading resumes after it. */
  cursor: string;
  statsWrittenAt: number;
  statsDirty: boolean;
  /** Monotonic time of the last entry read from the job's stream (or of taking the job). */
  lastEntryAt: number;
  /** True while the tail loop is applying entries: the writer is in use. */
  busy: boolean;
  /** Set when we stopped owning the job (lease lost, finished, shut down): nothing more is written. */
  gone: boolean;
  /** A lines entry flagged as holding a gap line was read: `log_lines_lost` is set with the next stats. */
  linesLost: boolean;
  /** `log_lines_lost` was written to Postgres: from then on the flagged entry may be trimmed. */
  linesLostStored: boolean;
  /**
   * Set when the log could not be written even after retries: the job is `failed` and cancelled;
   * the rest of its stream is read and dropped until its terminal status.
   */
  writeFailed?: string;
}

type RawEntry = [Buffer, Buffer[]];
/** A job's stats (lines, bytes) reach Postgres this often while it writes, for every owned job in one statement. */
const STATS_INTERVAL_MS = 250;
/** Waits between attempts at a failed write: three tries over about two seconds. */
const WRITE_RETRY_DELAYS_MS = [500, 1500];
/** An owned job whose stream gave nothing for this long is checked in Postgres: ended there, it is finished. */
const ENDED_IDLE_MS = 3000;
/** On a Redis Cluster the tail reads do not block: the pause after a round that found nothing. */
const CLUSTER_IDLE_PAUSE_MS = 20;
/**
 * A round that found only a few entries (the persister is caught up) waits this long before the
 * next read, so that a busy stream is read several chunks at a time: each round costs a read, a
 * write to each file and a trim, whatever it carries. Measured under the ingest flood, one chunk
 * per round spent more on those round trips than on the lines. The cost: during a flood, a line
 * reaches the file (not the live readers, who read Redis) up to this much later.
 */
const GATHER_MS = 10;
const GATHER_BELOW_ENTRIES = 8;
/** Only a round carrying about a full chunk or more (a flood) waits: a quiet job's next status is read at once. */
const GATHER_ABOVE_BYTES = 48 * 1024;

/**
 * Persists job logs. Runners announce a job on the `active` stream; a persister that reads the
 * announcement through the consumer group (new, or claimed from a persister that stopped
 * refreshing it) takes the job's lease ({@link PersisterLeases}) and owns the job until its
 * terminal status is stored. Only the lease holder writes: the owner tails the job's stream,
 * writes lines (idempotently, by seq, at fixed positions), applies status changes after the lines
 * before them, and trims what it has stored.
 */
@Injectable()
export class JobLogConsumer implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly log = new Logger(JobLogConsumer.name);
  /** Unique per process life: a restarted persister with the same host name and pid is someone else. */
  private readonly consumer = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  private readonly owned = new Map<string, OwnedJob>();
  private readonly loops: Promise<void>[] = [];
  private readonly leases: PersisterLeases;
  private stopping = false;
  private groupReader!: RedisClient;
  private streamReader!: RedisClient;
  /** Round-robin position of the tail loop when it cannot read every stream at once. */
  private readFrom = 0;

  constructor(
    @Inject(CONFIG) private readonly config: FlashpodsConfig,
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(REDIS_KEYS) private readonly keys: RedisKeys,
    private readonly ds: DataSource,
  ) {
    this.leases = new PersisterLeases(redis, keys, this.consumer, config.persister.claimIdleMs);
  }

  get ownedJobIds(): string[] {
    return [...this.owned.keys()];
  }

  async onApplicationBootstrap(): Promise<void> {
    await mkdir(this.config.logs.dir, { recursive: true });
    await this.ensureGroup();
    this.groupReader = createRedis(this.config, 'persister-group');
    this.streamReader = createRedis(this.config, 'persister-streams');
    this.loops.push(this.guard('discover', () => this.discoverLoop()));
    this.loops.push(this.guard('lease', () => this.leaseLoop()));
    this.loops.push(this.guard('claim', () => this.claimLoop()));
    this.loops.push(this.guard('tail', () => this.tailLoop()));
    this.log.log(`persister ${this.consumer} writing to ${this.config.logs.dir}`);
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopping = true;
    this.groupReader?.disconnect();
    this.streamReader?.disconnect();
    await Promise.allSettled(this.loops);
    // Hand our jobs back at once rather than after the claim window: the lease goes first, then a
    // fresh entry that another persister reads straight away; everything we stored is on disk.
    for (const job of this.owned.values()) {
      job.gone = true;
      await this.writeStats(job).catch(() => undefined);
      await job.writer.close();
      const released = await this.leases.release(job.lease).catch(() => undefined);
      // Redis unreachable, or the lease is someone else's: leave the entry to be claimed.
      if (released === undefined || released === 'other') continue;
      await this.redis
        .multi()
        .xadd(this.keys.activeJobs, '*', 'job', job.jobId)
        .xack(this.keys.activeJobs, this.keys.persisterGroup, job.activeEntryId)
        .xdel(this.keys.activeJobs, job.activeEntryId)
        .exec()
        .catch(() => undefined);
    }
    this.owned.clear();
  }

  /** The consumer group, created when missing (first start, or a Redis that lost its data). */
  private async ensureGroup(): Promise<void> {
    await this.redis
      .xgroup('CREATE', this.keys.activeJobs, this.keys.persisterGroup, '0', 'MKSTREAM')
      .catch((err: Error) => {
        if (!err.message.includes('BUSYGROUP')) throw err;
      });
  }

  private async guard(name: string, loop: () => Promise<void>): Promise<void> {
    while (!this.stopping) {
      try {
        await loop();
      } catch (err) {
        if (this.stopping) return;
        if ((err as Error).message.includes('NOGROUP')) await this.ensureGroup().catch(() => undefined);
        this.log.error(`${name} loop: ${(err as Error).message}; restarting in 1 s`);
        await sleep(1000);
      }
    }
  }

  /** New jobs: entries never delivered to any persister. */
  private async discoverLoop(): Promise<void> {
    while (!this.stopping) {
      const reply = (await this.groupReader.xreadgroup(
        'GROUP', this.keys.persisterGroup, this.consumer,
        'COUNT', 50, 'BLOCK', 1000,
        'STREAMS', this.keys.activeJobs, '>',
      )) as [string, [string, string[]][]][] | null;
      for (const [, entries] of reply ?? []) {
        for (const [entryId, fields] of entries) await this.take(entryId, fields);
      }
    }
  }

  /**
   * Every TTL/3: renews our leases, then refreshes (XCLAIM min-idle 0) the `active` entries of
   * the jobs whose renewal succeeded, so an entry never looks idle while its lease lives. A job
   * whose lease is no longer ours is dropped at once; its entry is left for whoever holds it.
   */
  private async leaseLoop(): Promise<void> {
    while (!this.stopping) {
      const jobs = [...this.owned.values()];
      const renewed = await this.leases.renew(jobs.map((j) => j.lease));
      const keep: string[] = [];
      for (const [i, job] of jobs.entries()) {
        if (job.gone) continue;
        if (renewed[i]) keep.push(job.activeEntryId);
        else await this.drop(job, 'its lease is no longer ours');
      }
      if (keep.length) {
        await this.redis.xclaim(this.keys.activeJobs, this.keys.persisterGroup, this.consumer, 0, ...keep, 'JUSTID');
      }
      await this.pause(this.leases.ttlMs / 3);
    }
  }

  /** Takes over entries of persisters that stopped refreshing them, and finishes jobs ended elsewhere. */
  private async claimLoop(): Promise<void> {
    const idle = this.config.persister.claimIdleMs;
    while (!this.stopping) {
      await this.finishEndedJobs();
      let cursor = '0-0';
      do {
        const [next, entries] = (await this.redis.xautoclaim(
          this.keys.activeJobs, this.keys.persisterGroup, this.consumer, idle, cursor, 'COUNT', 50,
        )) as [string, [string, string[] | null][]];
        for (const [entryId, fields] of entries) {
          if (fields) await this.take(entryId, fields);
        }
        cursor = next;
      } while (cursor !== '0-0' && !this.stopping);
      await this.pause(Math.min(idle / 3, 5000));
    }
  }

  /** Sleeps up to `ms`, cut short by shutdown. */
  private async pause(ms: number): Promise<void> {
    for (const until = Date.now() + ms; !this.stopping && Date.now() < until; ) await sleep(Math.min(100, ms));
  }

  /**
   * An `active` entry read (new or claimed). The job is ours only if its lease is free. A lease
   * held for another entry makes this one a duplicate announcement (a resumed runner, the
   * lost-runner check), removed; a lease held for this very entry means its owner is alive and
   * takes the entry back at its next refresh, so it is left alone.
   */
  private async take(entryId: string, fields: string[]): Promise<void> {
    const jobId = fields[fields.indexOf('job') + 1];
    if (!jobId) return this.ackEntry(entryId);
    const mine = this.owned.get(jobId);
    if (mine) {
      if (mine.activeEntryId !== entryId) await this.ackEntry(entryId);
      return;
    }
    const got = await this.leases.acquire(jobId, entryId);
    if (!got.acquired) {
      if (got.holder.activeEntryId !== entryId) await this.ackEntry(entryId);
      return;
    }
    const row: { status: JobStatus; log_keep: LogKeep }[] = await this.ds.query('SELECT status, log_keep FROM jobs WHERE id = $1', [jobId]);
    const ended = row.length === 0 || (isTerminal(row[0].status) && (await this.redis.xlen(this.keys.jobLog(jobId))) === 0);
    if (ended || this.stopping) {
      await this.leases.release(got.lease);
      if (ended) await this.ackEntry(entryId);
      return;
    }
    const job: OwnedJob = {
      jobId,
      activeEntryId: entryId,
      lease: got.lease,
      writer: await LogFileWriter.open(this.config.logs.dir, jobId, this.config.logs.maxBytes, {
        keep: row[0].log_keep,
        mayRepair: () => this.mayWrite(job),
      }),
      cursor: '0-0',
      statsWrittenAt: 0,
      statsDirty: true,
      lastEntryAt: performance.now(),
      busy: false,
      gone: false,
      linesLost: false,
      linesLostStored: false,
    };
    this.owned.set(jobId, job);
    persisterMetrics.taken();
    this.log.log(`took job ${jobId} with fence ${got.lease.fence} (resuming after seq ${job.writer.current.lastSeq})`);
  }

  private async ackEntry(entryId: string): Promise<void> {
    await this.redis
      .multi()
      .xack(this.keys.activeJobs, this.keys.persisterGroup, entryId)
      .xdel(this.keys.activeJobs, entryId)
      .exec();
  }

  /** Whether we may still write for the job: it is ours and its lease surely has not expired. */
  private mayWrite(job: OwnedJob): boolean {
    return !job.gone && this.owned.get(job.jobId) === job && this.leases.isValid(job.lease);
  }

  /** Stops owning a job without writing anything more; its entry stays pending for the next owner. */
  private async drop(job: OwnedJob, why: string): Promise<void> {
    if (job.gone) return;
    job.gone = true;
    if (this.owned.get(job.jobId) === job) this.owned.delete(job.jobId);
    persisterMetrics.dropped();
    this.log.warn(`dropped job ${job.jobId} (fence ${job.lease.fence}): ${why}; writing nothing more`);
    if (!job.busy) await job.writer.close();
    await this.leases.release(job.lease).catch(() => undefined);
  }

  /** Checked before each write: a lease that may have expired (a stall, a blocked loop) drops the job. */
  private async checkLease(job: OwnedJob): Promise<boolean> {
    if (this.mayWrite(job)) return true;
    await this.drop(job, 'its lease may have expired');
    return false;
  }

  /**
   * Reads every owned stream, at most `READ_BUDGET_ENTRIES` entries per read in all (see
   * read-budget.ts), and applies what came.
   */
  private async tailLoop(): Promise<void> {
    while (!this.stopping) {
      // A job still being applied (a write retrying) is not read again until that apply is done.
      const plan = planRead([...this.owned.values()].filter((j) => !j.busy), this.readFrom);
      this.readFrom = plan.next;
      if (plan.jobs.length === 0) {
        await sleep(20);
        continue;
      }
      const byKey = await this.readStreams(plan.jobs, plan.count);
      let read = 0;
      let readBytes = 0;
      for (const entries of byKey.values()) {
        read += entries.length;
        for (const [, fields] of entries) for (const f of fields) readBytes += f.length;
      }
      // Settled one by one: a failing job is logged and read again from its cursor next round, while
      // the others go on (a rejected Promise.all would restart this loop with applies still running).
      const results = await Promise.allSettled(
        plan.jobs.map(async (job) => {
          if (job.gone) return;
          const entries = byKey.get(this.keys.jobLog(job.jobId));
          job.busy = true;
          try {
            if (entries?.length) await this.apply(job, entries);
          } finally {
            job.busy = false;
            if (job.gone) await job.writer.close();
          }
        }),
      );
      const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      for (const f of failed) this.log.error(`tail: ${(f.reason as Error).message}; reading that job again shortly`);
      await this.writeDueStats().catch((err: Error) => this.log.error(`tail: writing log stats: ${err.message}; again next round`));
      if (failed.length) await sleep(1000);
      else if (read < GATHER_BELOW_ENTRIES && readBytes >= GATHER_ABOVE_BYTES) await sleep(GATHER_MS);
    }
  }

  /**
   * Up to `count` entries of each job's stream after its cursor, by stream key.
   *
   * On one server, one XREAD over every stream, blocking up to 100 ms for the first entry. On a
   * Redis Cluster each job's stream is in a slot of its own (its `{jobId}` hash tag), and one XREAD
   * must stay within a slot: one read per stream, sent together (ioredis writes them back to back
   * on each node's connection), none blocking — a blocked read would hold up every read queued
   * behind it on that node's connection. When none of them returned anything, a short pause
   * stands in for the block.
   */
  private async readStreams(jobs: OwnedJob[], count: number): Promise<Map<string, RawEntry[]>> {
    type Reply = [Buffer, RawEntry[]][] | null;
    if (!isCluster(this.streamReader)) {
      const reply = (await this.streamReader.xreadBuffer(
        'COUNT', count, 'BLOCK', 100,
        'STREAMS', ...jobs.map((j) => this.keys.jobLog(j.jobId)), ...jobs.map((j) => j.cursor),
      )) as Reply;
      return new Map((reply ?? []).map(([key, entries]) => [key.toString(), entries]));
    }
    const reader = this.streamReader;
    const replies = (await Promise.all(
      jobs.map((j) => reader.xreadBuffer('COUNT', count, 'STREAMS', this.keys.jobLog(j.jobId), j.cursor)),
    )) as Reply[];
    const byKey = new Map(replies.flatMap((r) => r ?? []).map(([key, entries]) => [key.toString(), entries] as const));
    if (byKey.size === 0) await sleep(CLUSTER_IDLE_PAUSE_MS);
    return byKey;
  }

  private async apply(job: OwnedJob, entries: RawEntry[]): Promise<void> {
    job.lastEntryAt = performance.now();
    // Consecutive line chunks are written together; a status entry first flushes what came before.
    let pending: EncodedChunk[] = [];
    let pendingLastId = job.cursor;
    const writePending = async (): Promise<boolean> => {
      if (pending.length === 0) return true;
      if (!(await this.write(job, pending))) return false;
      job.cursor = pendingLastId;
      pending = [];
      return true;
    };
    for (const [rawId, rawFields] of entries) {
      const entryId = rawId.toString();
      const fields = streamEntryFields(rawFields);
      const type = fields.get(LINES_FIELDS.type)?.toString();
      if (type === StreamEntryType.Lines) {
        pending.push({
          data: fields.get(LINES_FIELDS.data)!,
          firstSeq: Number(fields.get(LINES_FIELDS.firstSeq)),
          count: Number(fields.get(LINES_FIELDS.count)),
        });
        // Set whether or not these lines were written before (a re-delivery): the flag is idempotent.
        if (fields.has(LINES_FIELDS.gap)) job.linesLost = true;
        pendingLastId = entryId;
        continue;
      }
      if (!(await writePending())) return;
      if (type === StreamEntryType.Status) {
        if (!(await this.checkLease(job))) return;
        const event = JSON.parse(fields.get(STATUS_FIELDS.event)!.toString()) as StatusEvent;
        // A `head_tail` log gets its end written before the status is stored (read your writes). A
        // failure throws: the entry is applied again on the next round, and compose starts over.
        if (isTerminal(event.status) && !job.writeFailed) await job.writer.finish();
        // The stats and the status in one statement: a reader that sees the status sees the log it
        // came after (read-your-writes), and a status costs one commit, not two.
        await transitionJobWithStats(
          this.ds,
          job.jobId,
          event.status,
          {
            at: new Date(event.at),
            runnerId: event.runnerId,
            exitCode: event.exitCode,
            errorCode: event.error?.code ?? null,
            errorMessage: event.error?.message ?? null,
          },
          this.stats(job),
        );
        this.statsWritten(job);
        if (isTerminal(event.status)) {
          job.cursor = entryId;
          await this.finish(job);
          return;
        }
      }
      job.cursor = entryId;
    }
    if (!(await writePending())) return;
    if (!(await this.checkLease(job))) return;
    // A flag read from an entry about to be trimmed is stored first: once the entry is gone, the
    // next owner (after a crash or a drop) could learn of the gap from nowhere else. Other stats
    // wait for the end of the round (writeDueStats).
    if (job.linesLost && !job.linesLostStored) await this.writeStats(job);
    // Keep the last entry: it tells a re-attaching runner where the log stands.
    if (!(await this.leases.trim(job.lease, job.cursor))) await this.drop(job, 'its lease is held by another persister');
  }

  /**
   * Writes a batch of lines while the lease holds, retrying a failed write (ENOSPC, EIO) a few
   * times; a write that still fails ends the job (`failWrites`). Returns false if the job was
   * dropped and nothing may follow.
   */
  private async write(job: OwnedJob, chunks: EncodedChunk[]): Promise<boolean> {
    if (job.writeFailed) return true;
    for (let attempt = 0; ; attempt++) {
      if (!(await this.checkLease(job))) return false;
      try {
        const before = { ...job.writer.current };
        const records = await job.writer.appendChunks(chunks);
        job.statsDirty = true;
        // Counting must never fail a write that succeeded.
        try {
          persisterMetrics.written(chunks.length, records, before, job.writer.current);
        } catch (err) {
          this.log.warn(`job ${job.jobId}: metrics: ${(err as Error).message}`);
        }
        return true;
      } catch (err) {
        const retryable = typeof (err as NodeJS.ErrnoException).code === 'string';
        if (!retryable || attempt >= WRITE_RETRY_DELAYS_MS.length) {
          await this.failWrites(job, err as Error);
          return true;
        }
        persisterMetrics.writeRetried();
        this.log.warn(`job ${job.jobId}: log write failed (${(err as Error).message}); retrying`);
        await sleep(WRITE_RETRY_DELAYS_MS[attempt]);
      }
    }
  }

  /**
   * The log cannot be stored: rather than let the job run on unrecorded, it ends `failed` with
   * `log_write_failed` and is cancelled, as a user's cancel would (the runner kills the container).
   * We keep reading its stream, writing nothing, until its terminal status, then finish it as usual.
   */
  private async failWrites(job: OwnedJob, err: Error): Promise<void> {
    const cause = (err as NodeJS.ErrnoException).code ? `${(err as NodeJS.ErrnoException).code}: ${err.message}` : err.message;
    const message = `could not write the log (${cause}); lines after seq ${job.writer.current.lastSeq} were not stored`;
    job.writeFailed = message;
    this.log.error(`job ${job.jobId}: ${message}; failing and cancelling it`);
    // With the stats: a reader that sees the job `failed` must see the log as it stands (read-your-writes).
    await transitionJobWithStats(this.ds, job.jobId, JobStatus.Failed, { errorCode: JobErrorCode.LogWriteFailed, errorMessage: message }, this.stats(job));
    this.statsWritten(job);
    await this.redis
      .multi()
      .set(this.keys.jobCancel(job.jobId), '1', 'EX', 24 * 3600)
      .publish(this.keys.cancelChannel, job.jobId)
      .exec();
  }

  /**
   * The stats of every owned job that wrote since its last stats and last had them stored
   * STATS_INTERVAL_MS ago or more: one statement for all of them (with a hundred jobs printing,
   * one each was some 400 commits a second). A job being applied is left for the next round.
   */
  private async writeDueStats(): Promise<void> {
    const now = Date.now();
    const due = [...this.owned.values()].filter((j) => j.statsDirty && !j.busy && now - j.statsWrittenAt >= STATS_INTERVAL_MS && this.mayWrite(j));
    if (due.length === 0) return;
    await writeManyLogStats(this.ds, due.map((job) => ({ jobId: job.jobId, stats: this.stats(job) })));
    for (const job of due) this.statsWritten(job);
  }

  /** Never backwards: see {@link writeLogStats}. */
  private async writeStats(job: OwnedJob): Promise<void> {
    await writeLogStats(this.ds, job.jobId, this.stats(job));
    this.statsWritten(job);
  }

  private stats(job: OwnedJob): LogStats {
    const s = job.writer.current;
    return { bytes: s.bytes, lines: s.lines, truncated: s.truncated, lastSeq: s.lastSeq, linesLost: job.linesLost };
  }

  private statsWritten(job: OwnedJob): void {
    job.statsWrittenAt = Date.now();
    job.statsDirty = false;
    if (job.linesLost) job.linesLostStored = true;
  }

  /**
   * Owned jobs that ended in Postgres without a terminal entry reaching us (a job failed or
   * cancelled directly there, a runner that died before reporting) and whose stream has been quiet
   * for a while: finished, so they do not stay owned forever.
   */
  private async finishEndedJobs(): Promise<void> {
    const quiet = [...this.owned.values()].filter((j) => performance.now() - j.lastEntryAt > ENDED_IDLE_MS);
    if (quiet.length === 0) return;
    const rows: { id: string; status: JobStatus }[] = await this.ds.query('SELECT id, status FROM jobs WHERE id = ANY($1::uuid[])', [
      quiet.map((j) => j.jobId),
    ]);
    const status = new Map(rows.map((r) => [r.id, r.status]));
    for (const job of quiet) {
      const s = status.get(job.jobId);
      if (s !== undefined && !isTerminal(s) && s !== JobStatus.Cleaned) continue;
      if (job.busy || job.gone || performance.now() - job.lastEntryAt <= ENDED_IDLE_MS) continue;
      this.log.log(`job ${job.jobId} is ${s ?? 'deleted'} and its stream is quiet; finishing it`);
      await this.finish(job);
    }
  }

  private async finish(job: OwnedJob): Promise<void> {
    if (this.owned.get(job.jobId) === job) this.owned.delete(job.jobId);
    job.gone = true;
    if (!job.writeFailed && this.leases.isValid(job.lease)) {
      // Ended without its terminal entry reaching us (see finishEndedJobs): its end is composed now.
      if (!job.busy) {
        await job.writer.finish().catch((err: Error) => this.log.error(`job ${job.jobId}: composing the end of its log: ${err.message}`));
      }
      await this.writeStats(job);
    }
    if (!job.busy) await job.writer.close();
    // Our entry is acked only if no other persister holds the job by now.
    if ((await this.leases.release(job.lease)) !== 'other') await this.ackEntry(job.activeEntryId);
    // Live readers may still be catching up from the stream; it goes after a grace period.
    await this.redis.expire(this.keys.jobLog(job.jobId), 300);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
