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
/** Jobs the TTL sweep marks per statement. */
const TTL_BATCH = 1000;
/** The terminal states as a literal list, so the planner can use the partial index over exactly them. */
const TERMINAL_SQL = `status IN (${TERMINAL_STATUSES.map((s) => `'${s}'`).join(', ')})`;
/** A job's files: its log, its index, and the tail segments' directory of a running head_tail job. */
const LOG_FILE = /^([0-9a-f-]{36})\.(log|idx|tail)$/;
/** A file with no job row is left alone this long: its row may be in flight. */
const ORPHAN_GRACE_MS = 10 * 60 * 1000;

/** A job just marked `cleaned`, with what its files hold by its row's figures. */
interface CleanedJob {
  id: string;
  logBytes: number;
  lines: number;
  headTail: boolean;
}

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

  /**
   * Logs of jobs terminal for longer than LOG_RETENTION_SECONDS: deleted, the job `cleaned`.
   * Postgres and the disk work at once: the next batch is marked while this one's files are
   * deleted (each file still goes only after its job is marked). Measured on 100,000 jobs, the
   * two one after the other took 7× a `find -delete` of the same files (docs/benchmarks.md).
   * A failed delete ends the sweep; the batch marked meanwhile keeps its files until the orphan
   * sweep, which deletes the files of `cleaned` jobs.
   */
  async ttl(now = new Date()): Promise<SweepResult> {
    const cutoff = new Date(now.getTime() - this.config.logs.retentionSeconds * 1000);
    const total: SweepResult = { jobs: 0, files: 0, bytes: 0 };
    let marking: Promise<CleanedJob[]> | undefined = handled(this.markExpired(cutoff));
    try {
      while (marking) {
        const moved: CleanedJob[] = await marking;
        // A batch that moved nothing is the end: the rows left are newer than the cutoff, or another sweep has them.
        marking = moved.length ? handled(this.markExpired(cutoff)) : undefined;
        const files = await this.unlinkFiles(moved);
        add(total, { jobs: moved.length, ...files });
      }
      return total;
    } finally {
      // A failed unlink ends the sweep: the statement in flight ends before the sweep's lock is let go.
      await marking?.catch(() => undefined);
    }
  }

  /**
   * One batch of jobs terminal since before `cutoff`, oldest first, marked `cleaned` in one
   * statement. The ids go through ARRAY(…) so that the rows are found by primary key: written as
   * `id IN (subquery)`, the planner chose a hash join over a scan of the whole table, per batch
   * (EXPLAIN on 100,000 rows: 90 ms a batch of 1,000, against 32 ms this way).
   */
  private markExpired(cutoff: Date): Promise<CleanedJob[]> {
    return this.markCleaned(
      `ARRAY(SELECT id FROM jobs WHERE ${TERMINAL_SQL} AND finished_at < $1 ORDER BY finished_at, id LIMIT $2)`,
      [cutoff, TTL_BATCH],
    );
  }

  /**
   * Marks `cleaned`, in one UPDATE and still only from a terminal state, the jobs whose ids the SQL
   * array expression `ids` (over `params`) gives; returns them with their files' figures, oldest
   * first. RETURNING gives the rows in whatever order the scan met them (heap order, arbitrary once
   * rows have been updated), so the order is put back here: the oldest logs go first, and a failed
   * delete stops the sweep before the newer ones of its batch.
   */
  private async markCleaned(ids: string, params: unknown[]): Promise<CleanedJob[]> {
    const n = params.length;
    // A WITH … SELECT: TypeORM hands back the rows themselves (for a bare UPDATE, [rows, count]).
    const moved = (await this.ds.query(
      `WITH moved AS (
         UPDATE jobs SET status = $${n + 1}, cleaned_at = now(), updated_at = now()
         WHERE id = ANY(${ids}) AND status = ANY($${n + 2}::text[])
         RETURNING id, finished_at, log_bytes, log_lines, log_keep
       )
       SELECT id::text, log_bytes, log_lines, log_keep FROM moved ORDER BY finished_at, id`,
      [...params, JobStatus.Cleaned, [...TERMINAL_STATUSES]],
    )) as { id: string; log_bytes: string; log_lines: string; log_keep: LogKeep }[];
    return moved.map((r) => ({ id: r.id, logBytes: Number(r.log_bytes), lines: Number(r.log_lines), headTail: r.log_keep === LogKeep.HeadTail }));
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
    const moved = await this.markCleaned('$1::uuid[]', [ids]);
    const files = await this.unlinkFiles(moved);
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
  private async unlinkFiles(jobs: CleanedJob[]): Promise<{ files: number; bytes: number }> {
    let files = 0;
    let bytes = 0;
    const targets = jobs.flatMap((job) => [
      { path: join(this.config.logs.dir, logFileName(job.id)), bytes: job.logBytes },
      { path: join(this.config.logs.dir, indexFileName(job.id)), bytes: job.lines * INDEX_RECORD_BYTES },
    ]);
    await inParallel(targets, async (file) => {
      try {
        await unlink(file.path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw err;
      }
      files += 1;
      bytes += file.bytes;
    });
    // Only a head_tail job can have tail segments left (its end not composed): one stat for those.
    await inParallel(
      jobs.filter((job) => job.headTail),
      async (job) => {
        const dir = join(this.config.logs.dir, tailDirName(job.id));
        const s = await stat(dir).catch(() => undefined);
        if (!s) return;
        const removed = await removePath(dir, s);
        files += removed.files;
        bytes += removed.bytes;
      },
    );
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

/**
 * File operations `width` at a time, each starting as soon as one ends (not in waves that wait for
 * their slowest): enough to keep libuv's pool busy, few enough not to flood it. The first error
 * stops the rest from starting; it is thrown once those already started have ended, so nothing of
 * a sweep outlives it (nor the sweep's lock).
 */
async function inParallel<T>(items: readonly T[], fn: (item: T) => Promise<void>, width = 32): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < items.length) {
      try {
        await fn(items[next++]);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  const ended = await Promise.allSettled(Array.from({ length: Math.min(width, items.length) }, worker));
  const failure = ended.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failure) throw failure.reason;
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

/** `p`, its rejection already handled: it may fail while the caller awaits something else, and still throws where it is awaited. */
function handled<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

function add(total: SweepResult, r: SweepResult): void {
  total.jobs += r.jobs;
  total.files += r.files;
  total.bytes += r.bytes;
}
