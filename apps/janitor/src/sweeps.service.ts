import { Inject, Injectable, Logger } from '@nestjs/common';
import { CONFIG, FlashpodsConfig, REDIS, REDIS_KEYS, RedisClient, scanKeys } from '@flashpods/config';
import { JobStatus, LogKeep, RedisKeys, TERMINAL_STATUSES } from '@flashpods/contracts';
import { INDEX_RECORD_BYTES, indexFileName, logFileName, tailDirName } from '@flashpods/log-format';
import { readdir, rm, stat, unlink } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { join } from 'node:path';
import { DataSource } from 'typeorm';

export interface SweepResult {
  jobs: number;
  files: number;
  bytes: number;
}

const BATCH = 500;
/** The terminal states as a literal list, so the planner can use the partial index over exactly them. */
const TERMINAL_SQL = `status IN (${TERMINAL_STATUSES.map((s) => `'${s}'`).join(', ')})`;
/** A job's files: its log, its index, and the tail segments' directory of a running head_tail job. */
const LOG_FILE = /^([0-9a-f-]{36})\.(log|idx|tail)$/;
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
        `SELECT id FROM jobs WHERE ${TERMINAL_SQL} AND finished_at < $1 ORDER BY finished_at, id LIMIT $2`,
        [cutoff, BATCH],
      );
      add(total, await this.cleanJobs(rows.map((r) => r.id)));
      if (rows.length < BATCH) return total;
    }
  }

  /**
   * While the logs take more than LOG_TOTAL_MAX_BYTES, the oldest terminal jobs' logs go first.
   * Usage comes from Postgres (each job's `log_bytes` and index size, which the persister keeps
   * exact), not from the disk: one indexed sum however many files there are; the disk is touched
   * only to delete. Running jobs are never touched.
   */
  async quota(): Promise<SweepResult> {
    const total: SweepResult = { jobs: 0, files: 0, bytes: 0 };
    const limit = this.config.logs.totalMaxBytes;
    let used = await this.storedBytes();
    while (used > limit) {
      // The oldest terminal jobs, with the running sum of what deleting them frees: exactly the
      // ones needed, in one batch.
      const rows: { id: string; freed: string }[] = await this.ds.query(
        `SELECT id::text, sum(log_bytes + $1 * log_lines) OVER (ORDER BY finished_at, id) AS freed
         FROM (SELECT id, finished_at, log_bytes, log_lines FROM jobs WHERE ${TERMINAL_SQL}
               ORDER BY finished_at, id LIMIT $2) oldest
         ORDER BY finished_at, id`,
        [INDEX_RECORD_BYTES, BATCH],
      );
      if (rows.length === 0) break;
      const needed = rows.findIndex((r) => used - Number(r.freed) <= limit);
      const batch = needed === -1 ? rows : rows.slice(0, needed + 1);
      const r = await this.cleanJobs(batch.map((row) => row.id));
      add(total, r);
      if (r.jobs === 0) break;
      used = await this.storedBytes();
    }
    if (used > limit) {
      this.log.warn(`logs still take ${used} bytes, over the quota of ${limit}: only running jobs' logs are left`);
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
          const removed = await removePath(path, s);
          total.files += removed.files;
          total.bytes += removed.bytes;
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
   * Marks jobs `cleaned`, then deletes their files: in that order, a reader never sees a terminal
   * job whose log is already gone (`output` answering 200 with nothing), only `410 logs_deleted`.
   * One UPDATE for the batch (still only from a terminal state), then the files of those it moved.
   * The sizes come back from the rows, so each file costs one unlink and no stat.
   */
  private async cleanJobs(ids: string[]): Promise<SweepResult> {
    if (ids.length === 0) return { jobs: 0, files: 0, bytes: 0 };
    const [moved] = (await this.ds.query(
      `UPDATE jobs SET status = $2, cleaned_at = now(), updated_at = now() WHERE id = ANY($1::uuid[]) AND status = ANY($3::text[])
       RETURNING id::text, log_bytes, log_lines, log_keep`,
      [ids, JobStatus.Cleaned, [...TERMINAL_STATUSES]],
    )) as [{ id: string; log_bytes: string; log_lines: string; log_keep: LogKeep }[], number];
    const files = await this.unlinkFiles(
      moved.map((r) => ({ id: r.id, logBytes: Number(r.log_bytes), lines: Number(r.log_lines), headTail: r.log_keep === LogKeep.HeadTail })),
    );
    return { jobs: moved.length, files: files.files, bytes: files.bytes };
  }

  /** Deletes the files of jobs whose rows are gone (retention), with their sizes read from the disk. */
  private async removeFilesOf(ids: string[]): Promise<{ files: number; bytes: number }> {
    const paths = ids.flatMap((id) => [logFileName(id), indexFileName(id), tailDirName(id)].map((n) => join(this.config.logs.dir, n)));
    let files = 0;
    let bytes = 0;
    await inParallel(paths, async (path) => {
      const s = await stat(path).catch(() => undefined);
      if (!s) return;
      const removed = await removePath(path, s);
      files += removed.files;
      bytes += removed.bytes;
    });
    return { files, bytes };
  }

  /** Deletes the files of cleaned jobs: one unlink each, the bytes counted from the job's row. */
  private async unlinkFiles(jobs: { id: string; logBytes: number; lines: number; headTail: boolean }[]): Promise<{ files: number; bytes: number }> {
    let files = 0;
    let bytes = 0;
    const gone = (path: string) =>
      unlink(path).then(
        () => true,
        (err: NodeJS.ErrnoException) => {
          if (err.code === 'ENOENT') return false;
          throw err;
        },
      );
    await inParallel(jobs, async (job) => {
      if (await gone(join(this.config.logs.dir, logFileName(job.id)))) {
        files += 1;
        bytes += job.logBytes;
      }
      if (await gone(join(this.config.logs.dir, indexFileName(job.id)))) {
        files += 1;
        bytes += job.lines * INDEX_RECORD_BYTES;
      }
      // Only a head_tail job can have tail segments left (its end not composed): one stat for those.
      if (job.headTail) {
        const dir = join(this.config.logs.dir, tailDirName(job.id));
        const s = await stat(dir).catch(() => undefined);
        if (s) {
          const removed = await removePath(dir, s);
          files += removed.files;
          bytes += removed.bytes;
        }
      }
    });
    return { files, bytes };
  }

  /** What the logs of every job that still has them take on disk, by the rows' own figures. */
  private async storedBytes(): Promise<number> {
    const [{ bytes }] = (await this.ds.query(
      `SELECT coalesce(sum(log_bytes + $1 * log_lines), 0)::text AS bytes FROM jobs WHERE status <> $2`,
      [INDEX_RECORD_BYTES, JobStatus.Cleaned],
    )) as { bytes: string }[];
    return Number(bytes);
  }
}

/** File operations a few at a time: enough to keep the disk busy, few enough not to flood libuv's pool. */
async function inParallel<T>(items: readonly T[], fn: (item: T) => Promise<void>, width = 32): Promise<void> {
  for (let i = 0; i < items.length; i += width) await Promise.all(items.slice(i, i + width).map(fn));
}

/** The files directly in `dir` (a tail segments' directory holds no subdirectory): how many, how big. */
async function dirFiles(dir: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const s = await stat(join(dir, name)).catch(() => undefined);
    if (!s?.isFile()) continue;
    files += 1;
    bytes += s.size;
  }
  return { files, bytes };
}

/** Removes a job's file, or its tail segments' directory with what is in it; counts the files. */
async function removePath(path: string, s: Stats): Promise<{ files: number; bytes: number }> {
  if (!s.isDirectory()) {
    await rm(path, { force: true });
    return { files: 1, bytes: s.size };
  }
  const inside = await dirFiles(path);
  await rm(path, { recursive: true, force: true });
  return inside;
}

function add(total: SweepResult, r: SweepResult): void {
  total.jobs += r.jobs;
  total.files += r.files;
  total.bytes += r.bytes;
}
