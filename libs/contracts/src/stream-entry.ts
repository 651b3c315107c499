import { JobError, JobStatus } from './job-status';

/**
 * What a runner writes on a job's Redis stream, in order. The persister applies entries in
 * stream order, so a status change is stored only after every line before it is on disk.
 */
export enum StreamEntryType {
  Lines = 'lines',
  Status = 'status',
}

/**
 * Fields of a `lines` entry: `seq` of the first line, `n` lines, `d` the encoded lines, and `g`
 * ('1', only when set) when the chunk holds a gap line: output of the job was not captured there
 * (a fast-mode container written to while no runner was attached). The persister sets the job's
 * `log_lines_lost` from it, so the flag and the line that explains it travel in one entry.
 */
export const LINES_FIELDS = { type: 't', firstSeq: 's', count: 'n', data: 'd', gap: 'g' } as const;

/** A status change published by the runner, applied by the persister after the lines before it. */
export interface StatusEvent {
  status: JobStatus;
  at: number;
  runnerId: string;
  exitCode?: number | null;
  error?: JobError | null;
}

export const STATUS_FIELDS = { type: 't', event: 'e' } as const;
