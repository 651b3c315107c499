import { JobError, LogMode, LogStream } from '@flashpods/contracts';
import { JobLimits } from '@flashpods/database';

export interface ExecSpec {
  jobId: string;
  runnerId: string;
  image: string;
  command: string[] | null;
  env: Record<string, string>;
  limits: JobLimits;
  network: boolean;
}

/** What an executor reports to the job it runs. */
export interface ExecIO {
  /**
   * Raw output bytes. A returned promise asks the executor to stop reading until it settles; a
   * throw (the log pipeline failed) stops the workload and fails the run with that error.
   */
  output(stream: LogStream.Stdout | LogStream.Stderr, chunk: Buffer, ts?: number): Promise<void> | void;
  /** A lifecycle line for the job's own log. */
  system(text: string): Promise<void>;
  /** The workload is running (container started, process spawned). */
  started(): Promise<void>;
  /**
   * Output of a resumed workload was not captured from the last line shipped until this point
   * (a fast-mode container that wrote while no runner was attached): marks the gap in the job's
   * log, with a system line and the job's `lines_lost` flag. Lines read after it follow it.
   */
  gap(gap: OutputGap): Promise<void>;
  /** Aborted to kill the workload (timeout or cancel). */
  signal: AbortSignal;
}

export interface OutputGap {
  /** Until when output was not captured (ms since the epoch): the re-attach, or the container's exit. */
  until: number;
  /** The container had exited by then: nothing follows the gap but its end. */
  exited: boolean;
}

export interface ExecResult {
  exitCode: number | null;
  oomKilled: boolean;
}

/** A failure that ends the job as `failed` with this error rather than `runner_error`. */
export class ExecFailure extends Error {
  constructor(readonly error: JobError) {
    super(error.message);
  }
}

/** A workload left running by a runner that stopped, found again by its labels. */
export interface Orphan {
  jobId: string;
  runnerId: string;
  handle: string;
  running: boolean;
  /** Docker's state: `created` when the runner stopped between create and start. */
  state: string;
  /** How its output is captured, read off the workload itself (its log driver). */
  logMode: LogMode;
  /** Environment the workload was started with (secret values included, for masking). */
  env: Record<string, string>;
}

/** A workload of this installation, as the container sweep sees it. */
export interface Workload {
  jobId: string;
  handle: string;
}

export interface Executor {
  readonly kind: 'docker' | 'process';
  /** How new workloads' output is captured (a resumed one keeps the mode it was created with). */
  readonly logMode: LogMode;
  /** Runs the workload to its end. The workload is left in place: `remove` it once its status is shipped. */
  run(spec: ExecSpec, io: ExecIO): Promise<ExecResult>;
  /** Workloads this executor can find again after a restart (labelled with this runner's id when given). */
  findOrphans(runnerId?: string): Promise<Orphan[]>;
  /** Every workload of this installation this executor can see (all runners sharing its engine). */
  list(): Promise<Workload[]>;
  /** Follows a workload found again: its whole output from the start, then until it exits. */
  resume(handle: string, io: ExecIO): Promise<ExecResult>;
  /** Kills and removes a workload; one already gone is not an error. */
  discard(handle: string): Promise<void>;
  /** Kills and removes every workload of a job; none left is not an error. */
  remove(jobId: string): Promise<void>;
}

export const EXECUTOR = Symbol('EXECUTOR');
