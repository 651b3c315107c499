import { ENTERED_FROM, JobErrorCode, JobStatus, LogMode } from '@flashpods/contracts';
import { DataSource } from 'typeorm';

export interface TransitionPatch {
  runnerId?: string;
  exitCode?: number | null;
  errorCode?: JobErrorCode | null;
  errorMessage?: string | null;
  /** Set by the runner that claims the job: how it captures the output. */
  logMode?: LogMode;
  at?: Date;
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
  const sets = ['status = $2', 'updated_at = now()'];
  const params: unknown[] = [jobId, to, [...ENTERED_FROM[to]]];
  const add = (column: string, value: unknown) => {
    params.push(value);
    sets.push(`${column} = $${params.length}`);
  };
  const tsColumn = TIMESTAMP_COLUMN[to];
  if (tsColumn) add(tsColumn, patch.at ?? new Date());
  if (patch.runnerId !== undefined) add('runner_id', patch.runnerId);
  if (patch.exitCode !== undefined) add('exit_code', patch.exitCode);
  if (patch.errorCode !== undefined) add('error_code', patch.errorCode);
  if (patch.errorMessage !== undefined) add('error_message', patch.errorMessage);
  if (patch.logMode !== undefined) add('log_mode', patch.logMode);
  // TypeORM's Postgres driver answers an UPDATE with [rows, rowCount].
  const [, affected] = (await ds.query(
    `UPDATE jobs SET ${sets.join(', ')} WHERE id = $1 AND status = ANY($3::text[])`,
    params,
  )) as [unknown[], number];
  return affected > 0;
}
