import { ENTERED_FROM, JobErrorCode, JobStatus, LogMode } from '@flashpods/contracts';
import { DataSource } from 'typeorm';
import { JobEntity } from './job.entity';

export interface TransitionPatch {
  runnerId?: string;
  exitCode?: number | null;
  errorCode?: JobErrorCode | null;
  errorMessage?: string | null;
  /** Set by the runner that claims the job: how it captures the output. */
  logMode?: LogMode;
  at?: Date;
}

/** A job's stored log as its persister last wrote it (the `log_*` columns). */
export interface LogStats {
  bytes: number;
  lines: number;
  truncated: boolean;
  /** Seq of the last line on disk: stats with an older one (a stale owner's) change nothing. */
  lastSeq: number;
  /** Once set, stays set (a later owner that has not seen the gap entry keeps it). */
  linesLost: boolean;
}

const TIMESTAMP_COLUMN: Partial<Record<JobStatus, string>> = {
  [JobStatus.Starting]: 'started_at',
  [JobStatus.Running]: 'running_at',
  [JobStatus.Completed]: 'finished_at',
  [JobStatus.Failed]: 'finished_at',
  [JobStatus.TimedOut]: 'finished_at',
  [JobStatus.Cancelled]: 'finished_at',
  [JobStatus.Cleaned]: 'cleaned_at',
};

/** `$1` the job id, `$2` the new status, `$3` the statuses it may be entered from; then the patch's values. */
function transitionStatement(jobId: string, to: JobStatus, patch: TransitionPatch): { sets: [string, string][]; params: unknown[] } {
  const params: unknown[] = [jobId, to, [...ENTERED_FROM[to]]];
  const sets: [string, string][] = [['status', '$2']];
  const add = (column: string, value: unknown) => {
    params.push(value);
    sets.push([column, `$${params.length}`]);
  };
  const tsColumn = TIMESTAMP_COLUMN[to];
  if (tsColumn) add(tsColumn, patch.at ?? new Date());
  if (patch.runnerId !== undefined) add('runner_id', patch.runnerId);
  if (patch.exitCode !== undefined) add('exit_code', patch.exitCode);
  if (patch.errorCode !== undefined) add('error_code', patch.errorCode);
  if (patch.errorMessage !== undefined) add('error_message', patch.errorMessage);
  if (patch.logMode !== undefined) add('log_mode', patch.logMode);
  return { sets, params };
}

const FROM_ALLOWED = 'status = ANY($3::text[])';

/**
 * Moves a job to `to` only from a state allowed by the lifecycle, in one statement, so two
 * writers racing (a cancel and a runner's claim) cannot both win. Returns whether it moved.
 */
export async function transitionJob(
  ds: DataSource,
  jobId: string,
  to: JobStatus,
  patch: TransitionPatch = {},
): Promise<boolean> {
  const { sets, params } = transitionStatement(jobId, to, patch);
  // TypeORM's Postgres driver answers an UPDATE with [rows, rowCount].
  const [, affected] = (await ds.query(
    `UPDATE jobs SET ${sets.map(([c, v]) => `${c} = ${v}`).join(', ')}, updated_at = now() WHERE id = $1 AND ${FROM_ALLOWED}`,
    params,
  )) as [unknown[], number];
  return affected > 0;
}

/**
 * A runner's claim (`pending → starting`, as {@link transitionJob}) answered with the claimed row
 * in the same statement: one round trip on the job's way to its start instead of a read and an
 * update. Undefined when the job was not pending (cancelled, claimed by another runner) or is gone.
 */
export async function claimJob(ds: DataSource, jobId: string, patch: { runnerId: string; logMode: LogMode }): Promise<JobEntity | undefined> {
  const { sets, params } = transitionStatement(jobId, JobStatus.Starting, patch);
  const [rows] = (await ds.query(
    `UPDATE jobs SET ${sets.map(([c, v]) => `${c} = ${v}`).join(', ')}, updated_at = now() WHERE id = $1 AND ${FROM_ALLOWED} RETURNING *`,
    params,
  )) as [Record<string, unknown>[], number];
  return rows.length ? hydrateJob(ds, rows[0]) : undefined;
}

/** A raw `jobs` row as the entity TypeORM would have read (column types and transformers applied). */
function hydrateJob(ds: DataSource, raw: Record<string, unknown>): JobEntity {
  const job = new JobEntity();
  for (const column of ds.getMetadata(JobEntity).columns) {
    column.setEntityValue(job, ds.driver.prepareHydratedValue(raw[column.databaseName], column));
  }
  return job;
}

/**
 * Writes a job's log stats. Stats never go backwards: a stale owner's update (an older
 * `log_last_seq`) changes nothing, and `log_lines_lost` once set stays set.
 */
export async function writeLogStats(ds: DataSource, jobId: string, s: LogStats): Promise<void> {
  await writeManyLogStats(ds, [{ jobId, stats: s }]);
}

/**
 * {@link writeLogStats} for several jobs in one statement, so one round trip and one commit: a
 * persister owning a hundred jobs writes their stats together. The rows are locked first, in id
 * order (`ORDER BY id FOR UPDATE`), whatever the order of `batch`: the same in every such
 * statement, so two of them never wait on each other in a circle.
 */
export async function writeManyLogStats(ds: DataSource, batch: readonly { jobId: string; stats: LogStats }[]): Promise<void> {
  if (batch.length === 0) return;
  const column = <T>(f: (s: LogStats) => T) => batch.map((b) => f(b.stats));
  await ds.query(
    `UPDATE jobs j SET log_bytes = s.bytes, log_lines = s.lines, log_truncated = s.truncated, log_last_seq = s.last_seq,
       log_lines_lost = j.log_lines_lost OR s.lost, updated_at = now()
     FROM (
       SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::boolean[], $5::bigint[], $6::boolean[])
         AS t(id, bytes, lines, truncated, last_seq, lost)
       WHERE id IN (SELECT id FROM jobs WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE)
     ) s
     WHERE j.id = s.id AND j.log_last_seq <= s.last_seq`,
    [
      batch.map((b) => b.jobId),
      column((s) => s.bytes),
      column((s) => s.lines),
      column((s) => s.truncated),
      column((s) => s.lastSeq),
      column((s) => s.linesLost),
    ],
  );
}

/**
 * {@link writeLogStats} and {@link transitionJob} in one statement, so one commit: a reader sees the
 * status and the log it ended with together (read-your-writes), and the persister pays one
 * round trip and one fsync per status entry instead of two. Each half keeps its own guard: stats
 * that are stale are not written while the status still moves, and a refused move (the job ended
 * elsewhere) still records newer stats. Returns whether the status moved.
 */
export async function transitionJobWithStats(
  ds: DataSource,
  jobId: string,
  to: JobStatus,
  patch: TransitionPatch,
  stats: LogStats,
): Promise<boolean> {
  const { sets, params } = transitionStatement(jobId, to, patch);
  const at = params.length;
  params.push(stats.bytes, stats.lines, stats.truncated, stats.lastSeq, stats.linesLost);
  const newer = `jobs.log_last_seq <= $${at + 4}`;
  const statusSets = sets.map(([c, v]) => `${c} = CASE WHEN prev.moves THEN ${v} ELSE jobs.${c} END`);
  const statsSets = ['log_bytes', 'log_lines', 'log_truncated', 'log_last_seq'].map(
    (c, i) => `${c} = CASE WHEN ${newer} THEN $${at + 1 + i} ELSE jobs.${c} END`,
  );
  // `prev` locks the row and reads its status before the update, for the answer: RETURNING sees
  // only the new row.
  const [rows] = (await ds.query(
    `WITH prev AS (SELECT id, ${FROM_ALLOWED} AS moves FROM jobs WHERE id = $1 FOR UPDATE)
     UPDATE jobs SET ${[...statusSets, ...statsSets].join(', ')},
       log_lines_lost = jobs.log_lines_lost OR $${at + 5}, updated_at = now()
     FROM prev WHERE jobs.id = prev.id AND (prev.moves OR ${newer})
     RETURNING prev.moves`,
    params,
  )) as [{ moves: boolean }[], number];
  return rows[0]?.moves === true;
}
