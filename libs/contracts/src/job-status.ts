export enum JobStatus {
  Pending = 'pending',
  Starting = 'starting',
  Running = 'running',
  Completed = 'completed',
  Failed = 'failed',
  TimedOut = 'timed_out',
  Cancelled = 'cancelled',
  Cleaned = 'cleaned',
}

/** States in which the job has ended; `cleaned` only follows one of these. */
export const TERMINAL_STATUSES: readonly JobStatus[] = [
  JobStatus.Completed,
  JobStatus.Failed,
  JobStatus.TimedOut,
  JobStatus.Cancelled,
];

/** States a job whose container may be alive is in. */
export const ACTIVE_STATUSES: readonly JobStatus[] = [JobStatus.Starting, JobStatus.Running];

export function isTerminal(status: JobStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}

/** Which states each state may be entered from: transitions are applied only from these. */
export const ENTERED_FROM: Readonly<Record<JobStatus, readonly JobStatus[]>> = {
  [JobStatus.Pending]: [],
  [JobStatus.Starting]: [JobStatus.Pending],
  [JobStatus.Running]: [JobStatus.Starting],
  [JobStatus.Completed]: [JobStatus.Starting, JobStatus.Running],
  [JobStatus.Failed]: [JobStatus.Pending, JobStatus.Starting, JobStatus.Running],
  [JobStatus.TimedOut]: [JobStatus.Starting, JobStatus.Running],
  [JobStatus.Cancelled]: [JobStatus.Pending, JobStatus.Starting, JobStatus.Running],
  [JobStatus.Cleaned]: [...TERMINAL_STATUSES],
};

export enum JobErrorCode {
  NonzeroExit = 'nonzero_exit',
  ImageNotFound = 'image_not_found',
  OomKilled = 'oom_killed',
  RunnerError = 'runner_error',
  RunnerLost = 'runner_lost',
  /** The log could not be written (disk full, I/O error): the job was stopped rather than run on unrecorded. */
  LogWriteFailed = 'log_write_failed',
}

export interface JobError {
  code: JobErrorCode;
  message: string;
}
