import { JobError, JobStatus } from './job-status';

/**
 * What a runner writes on a job's Redis stream, in order. The persister applies entries in
 * stream order, so a status change is stored only after every line before it is on disk.
 */
export enum StreamEntryType {
  Lines = 'lines',
  Status = 'status',
}

/** Fields of a `lines` entry: `seq` of the first line, `n` lines, `d` the encoded lines. */
export const LINES_FIELDS = { type: 't', firstSeq: 's', count: 'n', data: 'd' } as const;

/** A status change published by the runner, applied by the persister after the lines before it. */
export interface StatusEvent {
  status: JobStatus;
  at: number;
  runnerId: string;
  exitCode?: number | null;
  error?: JobError | null;
}

export const STATUS_FIELDS = { type: 't', event: 'e' } as const;
