import { Inject, Injectable, Logger } from '@nestjs/common';
import { CONFIG, FlashpodsConfig, REDIS, REDIS_KEYS, RedisClient, scanKeys } from '@flashpods/config';
import { JobStatus, RedisKeys, TERMINAL_STATUSES } from '@flashpods/contracts';
import { transitionJob } from '@flashpods/database';
import { indexFileName, logFileName } from '@flashpods/log-format';
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DataSource } from 'typeorm';

export interface SweepResult {
  jobs: number;
  files: number;
  bytes: number;
}

const BATCH = 500;
const LOG_FILE = /^([0-9a-f-]{36})\.(log|idx)$/;
/** A file with no job row is left alone this long: its row may be in flight. */
const ORPHAN_GRACE_MS = 10 * 60 * 1000;

/** The janitor's sweeps. Each is safe to run again; none touches a job that is not terminal. */
@Injectable()
export class SweepsService {
  private readonly log = new Logger(SweepsService.name);

  constructor(
    @Inject(CONFIG) private readonly config: FlashpodsConfig,
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(REDIS_KEYS) private readonly keys: RedisKeys,
    private readonly ds: DataSource,
  ) {}

  /** Logs of jobs terminal for longer than LOG_RETENTION_SECONDS: deleted, the job `cleaned`. */
  async ttl(now = new Date()): Promise<SweepResult> {
    const cutoff = new Date(now.getTime() - this.config.logs.retentionSeconds * 1000);
    const total: SweepResult = { jobs: 0, files: 0, bytes: 0 };
    for (;;) {
      const rows: { id: string }[] = await this.ds.query(
        `SELECT id FROM jobs WHERE status = ANY($1::text[]) AND finished_at < $2 ORDER BY finished_at LIMIT $3`,
        [[...TERMINAL_STATUSES], cutoff, BATCH],
      );
      add(total, await this.cleanJobs(rows.map((r) => r.id)));
      if (rows.length < BATCH) return total;
    }
  }

  /** While the log directory is over LOG_TOTAL_MAX_BYTES, the oldest terminal jobs' logs go first. */
  async quota(): Promise<SweepResult> {
    const total: SweepResult = { jobs: 0, files: 0, bytes: 0 };
    let used = await this.directoryBytes();
    // Each cleaned job leaves the terminal set, so every round reads the next oldest.
    while (used > this.config.logs.totalMaxBytes) {
      const rows: { id: string }[] = await this.ds.query(
        `SELECT id FROM jobs WHERE status = ANY($1::text[]) ORDER BY finished_at, id LIMIT $2`,
        [[...TERMINAL_STATUSES], BATCH],
      );
      if (rows.length === 0) break;
      for (const { id } of rows) {
        const r = await this.cleanJob(id);
        add(total, r);
        used -= r.bytes;
        if (used <= this.config.logs.totalMaxBytes) break;
      }
    }
    if (used > this.config.logs.totalMaxBytes) {
      this.log.warn(`log directory still holds ${used} bytes over the quota: only running jobs' logs are left`);
    }
    return total;
  }

  /** Job records terminal (or cleaned) for longer than JOB_RETENTION_DAYS: deleted with their logs. */
  async retention(now = new Date()): Promise<SweepResult> {
    const cutoff = new Date(now.getTime() - this.config.jobs.retentionDays * 86400 * 1000);
    const total: SweepResult = { jobs: 0, files: 0, bytes: 0 };
    for (;;) {
      const [rows] = (await this.ds.query(
        `DELETE FROM jobs WHERE id IN (
           SELECT id FROM jobs WHERE status = ANY($1::text[]) AND finished_at < $2 LIMIT $3
         ) RETURNING id`,
        [[...TERMINAL_STATUSES, JobStatus.Cleaned], cutoff, BATCH],
      )) as [{ id: string }[], number];
      const files = await this.removeFilesOf(rows.map((r) => r.id));
      total.files += files.files;
      total.bytes += files.bytes;
      total.jobs += rows.length;
      if (rows.length < BATCH) return total;
    }
  }

  /** Log files with no job row; Redis streams of jobs that are gone or finished. */
  async orphans(now = Date.now()): Promise<SweepResult> {
    const total: SweepResult = { jobs: 0, files: 0, bytes: 0 };
    const byJob = new Map<string, string[]>();
    for (const name of await readdir(this.config.logs.dir).catch(() => [] as string[])) {
      const m = LOG_FILE.exec(name);
      if (m) byJob.set(m[1], [...(byJob.get(m[1]) ?? []), name]);
    }
    const ids = [...byJob.keys()];
    for (let i = 0; i < ids.length; i += BATCH) {
      const chunk = ids.slice(i, i + BATCH);
      const known = await this.statusesOf(chunk);
      for (const id of chunk) {
        const status = known.get(id);
        if (status !== undefined && status !== JobStatus.Cleaned) continue;
        for (const name of byJob.get(id)!) {
          const path = join(this.config.logs.dir, name);
          const s = await stat(path).catch(() => undefined);
          if (!s || now - s.mtimeMs < ORPHAN_GRACE_MS) continue;
          await rm(path, { force: true });
          total.files += 1;
          total.bytes += s.size;
        }
      }
    }
    total.jobs += await this.orphanStreams();
    return total;
  }

  private async orphanStreams(): Promise<number> {
    let removed = 0;
    // Every server holding data: on a Redis Cluster, job streams are spread over the masters.
    for await (const keys of scanKeys(this.redis, this.keys.jobLogPattern)) {
      const ids = keys.map((k) => this.keys.jobIdOfLogKey(k) ?? '').filter((id) => /^[0-9a-f-]{36}$/.test(id));
      if (ids.length === 0) continue;
      const known = await this.statusesOf(ids);
      const live = new Set([...known].filter(([, s]) => !TERMINAL_STATUSES.includes(s) && s !== JobStatus.Cleaned).map(([id]) => id));
      for (const id of ids) {
        if (live.has(id)) continue;
        // A finished job's stream already has a TTL; only streams without one are orphans.
        if ((await this.redis.ttl(this.keys.jobLog(id))) === -1) removed += await this.redis.del(this.keys.jobLog(id));
      }
    }
    return removed;
  }

  /** The status of each of `ids` that still has a job row. */
  private async statusesOf(ids: string[]): Promise<Map<string, JobStatus>> {
    const rows: { id: string; status: JobStatus }[] = await this.ds.query(
      `SELECT id::text, status FROM jobs WHERE id = ANY($1::uuid[])`,
      [ids],
    );
    return new Map(rows.map((r) => [r.id, r.status]));
  }

  /**
   * Marks the job `cleaned`, then deletes its files: in that order, a reader never sees a terminal
   * job whose log is already gone (`output` answering 200 with nothing), only `410 logs_deleted`.
   */
  private async cleanJob(id: string): Promise<SweepResult> {
    if (!(await transitionJob(this.ds, id, JobStatus.Cleaned))) return { jobs: 0, files: 0, bytes: 0 };
    const files = await this.removeFilesOf([id]);
    return { jobs: 1, files: files.files, bytes: files.bytes };
  }

  /** The same for a batch: one UPDATE for all (still only from a terminal state), then the files of those it moved. */
  private async cleanJobs(ids: string[]): Promise<SweepResult> {
    if (ids.length === 0) return { jobs: 0, files: 0, bytes: 0 };
    const [moved] = (await this.ds.query(
      `UPDATE jobs SET status = $2, cleaned_at = now(), updated_at = now() WHERE id = ANY($1::uuid[]) AND status = ANY($3::text[]) RETURNING id`,
      [ids, JobStatus.Cleaned, [...TERMINAL_STATUSES]],
    )) as [{ id: string }[], number];
    const files = await this.removeFilesOf(moved.map((r) => r.id));
    return { jobs: moved.length, files: files.files, bytes: files.bytes };
  }

  private async removeFilesOf(ids: string[]): Promise<{ files: number; bytes: number }> {
    const paths = ids.flatMap((id) => [logFileName(id), indexFileName(id)].map((n) => join(this.config.logs.dir, n)));
    let files = 0;
    let bytes = 0;
    const IO_PARALLEL = 32;
    for (let i = 0; i < paths.length; i += IO_PARALLEL) {
      await Promise.all(
        paths.slice(i, i + IO_PARALLEL).map(async (path) => {
          const s = await stat(path).catch(() => undefined);
          if (!s) return;
          await rm(path, { force: true });
          files += 1;
          bytes += s.size;
        }),
      );
    }
    return { files, bytes };
  }

  private async directoryBytes(): Promise<number> {
    let bytes = 0;
    for (const name of await readdir(this.config.logs.dir).catch(() => [] as string[])) {
      const s = await stat(join(this.config.logs.dir, name)).catch(() => undefined);
      if (s?.isFile()) bytes += s.size;
    }
    return bytes;
  }
}

function add(total: SweepResult, r: SweepResult): void {
  total.jobs += r.jobs;
  total.files += r.files;
  total.bytes += r.bytes;
}
