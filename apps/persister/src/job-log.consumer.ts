import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { CONFIG, createRedis, FlashpodsConfig, REDIS, REDIS_KEYS } from '@flashpods/config';
import {
  isTerminal,
  JobStatus,
  LINES_FIELDS,
  RedisKeys,
  STATUS_FIELDS,
  StatusEvent,
  StreamEntryType,
} from '@flashpods/contracts';
import { transitionJob } from '@flashpods/database';
import Redis from 'ioredis';
import { mkdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { DataSource } from 'typeorm';
import { streamEntryFields } from '@flashpods/log-format';
import { EncodedChunk, LogFileWriter } from './log-file.writer';

interface OwnedJob {
  jobId: string;
  /** Id of this job's entry in the `active` stream: pending on us while we own the job. */
  activeEntryId: string;
  writer: LogFileWriter;
  /** Last entry of the job's stream applied; reading resumes after it. */
  cursor: string;
  statsWrittenAt: number;
  statsDirty: boolean;
}

type RawEntry = [Buffer, Buffer[]];
const STATS_INTERVAL_MS = 250;

/**
 * Persists job logs. A persister owns a job from the moment it reads the job's entry from the
 * `active` stream's consumer group until the job's terminal status is stored; the entry stays
 * pending meanwhile, and a persister that dies leaves it to be claimed by another after
 * `PERSISTER_CLAIM_IDLE_MS`. The owner tails the job's stream, appends lines (idempotently, by
 * seq), applies status changes after the lines before them, and trims what it has stored.
 */
@Injectable()
export class JobLogConsumer implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly log = new Logger(JobLogConsumer.name);
  private readonly consumer = `${hostname()}-${process.pid}`;
  private readonly owned = new Map<string, OwnedJob>();
  private readonly loops: Promise<void>[] = [];
  private stopping = false;
  private groupReader!: Redis;
  private streamReader!: Redis;

  constructor(
    @Inject(CONFIG) private readonly config: FlashpodsConfig,
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(REDIS_KEYS) private readonly keys: RedisKeys,
    private readonly ds: DataSource,
  ) {}

  get ownedJobIds(): string[] {
    return [...this.owned.keys()];
  }

  async onApplicationBootstrap(): Promise<void> {
    await mkdir(this.config.logs.dir, { recursive: true });
    await this.ensureGroup();
    this.groupReader = createRedis(this.config, 'persister-group');
    this.streamReader = createRedis(this.config, 'persister-streams');
    this.loops.push(this.guard('discover', () => this.discoverLoop()));
    this.loops.push(this.guard('claim', () => this.claimLoop()));
    this.loops.push(this.guard('tail', () => this.tailLoop()));
    this.log.log(`persister ${this.consumer} writing to ${this.config.logs.dir}`);
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopping = true;
    this.groupReader?.disconnect();
    this.streamReader?.disconnect();
    await Promise.allSettled(this.loops);
    // Hand our jobs back at once rather than after the claim window: a fresh entry is read by
    // another persister straight away; everything we stored is already on disk.
    for (const job of this.owned.values()) {
      await this.writeStats(job).catch(() => undefined);
      await job.writer.close();
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

  /** Keeps our own entries fresh, and takes over entries of persisters that stopped refreshing theirs. */
  private async claimLoop(): Promise<void> {
    const idle = this.config.persister.claimIdleMs;
    while (!this.stopping) {
      const mine = [...this.owned.values()].map((j) => j.activeEntryId);
      if (mine.length) {
        await this.redis.xclaim(this.keys.activeJobs, this.keys.persisterGroup, this.consumer, 0, ...mine, 'JUSTID');
      }
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

  private async take(entryId: string, fields: string[]): Promise<void> {
    const jobId = fields[fields.indexOf('job') + 1];
    if (!jobId || this.owned.has(jobId)) {
      if (jobId && this.owned.get(jobId)?.activeEntryId !== entryId) await this.release(entryId);
      return;
    }
    const row: { status: JobStatus }[] = await this.ds.query('SELECT status FROM jobs WHERE id = $1', [jobId]);
    if (row.length === 0) {
      await this.release(entryId);
      return;
    }
    const writer = await LogFileWriter.open(this.config.logs.dir, jobId, this.config.logs.maxBytes);
    this.owned.set(jobId, { jobId, activeEntryId: entryId, writer, cursor: '0-0', statsWrittenAt: 0, statsDirty: true });
    this.log.log(`took job ${jobId} (resuming after seq ${writer.current.lastSeq})`);
  }

  private async release(entryId: string): Promise<void> {
    await this.redis
      .multi()
      .xack(this.keys.activeJobs, this.keys.persisterGroup, entryId)
      .xdel(this.keys.activeJobs, entryId)
      .exec();
  }

  private async tailLoop(): Promise<void> {
    while (!this.stopping) {
      const jobs = [...this.owned.values()];
      if (jobs.length === 0) {
        await sleep(20);
        continue;
      }
      const reply = (await this.streamReader.xreadBuffer(
        'COUNT', 64, 'BLOCK', 100,
        'STREAMS', ...jobs.map((j) => this.keys.jobLog(j.jobId)), ...jobs.map((j) => j.cursor),
      )) as [Buffer, RawEntry[]][] | null;
      const byKey = new Map((reply ?? []).map(([key, entries]) => [key.toString(), entries]));
      await Promise.all(
        jobs.map(async (job) => {
          const entries = byKey.get(this.keys.jobLog(job.jobId));
          if (entries?.length) await this.apply(job, entries);
          else if (job.statsDirty) await this.writeStats(job);
        }),
      );
    }
  }

  private async apply(job: OwnedJob, entries: RawEntry[]): Promise<void> {
    // Consecutive line chunks are written together; a status entry first flushes what came before.
    let pending: EncodedChunk[] = [];
    let pendingLastId = job.cursor;
    const writePending = async () => {
      if (pending.length === 0) return;
      await job.writer.appendChunks(pending);
      job.statsDirty = true;
      job.cursor = pendingLastId;
      pending = [];
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
        pendingLastId = entryId;
        continue;
      }
      await writePending();
      if (type === StreamEntryType.Status) {
        const event = JSON.parse(fields.get(STATUS_FIELDS.event)!.toString()) as StatusEvent;
        await this.writeStats(job);
        await transitionJob(this.ds, job.jobId, event.status, {
          at: new Date(event.at),
          runnerId: event.runnerId,
          exitCode: event.exitCode,
          errorCode: event.error?.code ?? null,
          errorMessage: event.error?.message ?? null,
        });
        if (isTerminal(event.status)) {
          job.cursor = entryId;
          await this.finish(job);
          return;
        }
      }
      job.cursor = entryId;
    }
    await writePending();
    if (Date.now() - job.statsWrittenAt >= STATS_INTERVAL_MS) await this.writeStats(job);
    // Keep the last entry: it tells a re-attaching runner where the log stands.
    await this.redis.xtrim(this.keys.jobLog(job.jobId), 'MINID', job.cursor);
  }

  private async writeStats(job: OwnedJob): Promise<void> {
    const s = job.writer.current;
    await this.ds.query(
      `UPDATE jobs SET log_bytes = $2, log_lines = $3, log_truncated = $4, log_last_seq = $5, updated_at = now()
       WHERE id = $1`,
      [job.jobId, s.bytes, s.lines, s.truncated, s.lastSeq],
    );
    job.statsWrittenAt = Date.now();
    job.statsDirty = false;
  }

  private async finish(job: OwnedJob): Promise<void> {
    this.owned.delete(job.jobId);
    await job.writer.close();
    await this.release(job.activeEntryId);
    // Live readers may still be catching up from the stream; it goes after a grace period.
    await this.redis.expire(this.keys.jobLog(job.jobId), 300);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
