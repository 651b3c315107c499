import { JobErrorCode, JobStatus, LogKeep, LogMode } from '@flashpods/contracts';
import { Column, Entity, PrimaryColumn, ValueTransformer } from 'typeorm';

/** Postgres returns bigint as a string; every bigint here fits in a double. */
const bigintAsNumber: ValueTransformer = {
  to: (v: number | null | undefined) => v,
  from: (v: string | null) => (v === null ? null : Number(v)),
};

export interface JobLimits {
  memoryMb: number;
  cpus: number;
  pids: number;
}

@Entity('jobs')
export class JobEntity {
  @PrimaryColumn('uuid')
  id!: string;

  @Column('text')
  tenant!: string;

  @Column('text')
  status!: JobStatus;

  @Column('text')
  image!: string;

  @Column('jsonb', { nullable: true })
  command!: string[] | null;

  @Column('jsonb')
  env!: Record<string, string>;

  /** Names only: secret values are never written to Postgres. */
  @Column('jsonb', { name: 'secret_names' })
  secretNames!: string[];

  @Column('integer', { name: 'timeout_seconds' })
  timeoutSeconds!: number;

  @Column('jsonb')
  limits!: JobLimits;

  @Column('jsonb')
  labels!: Record<string, string>;

  @Column('boolean')
  network!: boolean;

  @Column('integer', { name: 'exit_code', nullable: true })
  exitCode!: number | null;

  @Column('text', { name: 'error_code', nullable: true })
  errorCode!: JobErrorCode | null;

  @Column('text', { name: 'error_message', nullable: true })
  errorMessage!: string | null;

  @Column('text', { name: 'runner_id', nullable: true })
  runnerId!: string | null;

  @Column('timestamptz', { name: 'created_at' })
  createdAt!: Date;

  @Column('timestamptz', { name: 'started_at', nullable: true })
  startedAt!: Date | null;

  @Column('timestamptz', { name: 'running_at', nullable: true })
  runningAt!: Date | null;

  @Column('timestamptz', { name: 'finished_at', nullable: true })
  finishedAt!: Date | null;

  @Column('timestamptz', { name: 'cleaned_at', nullable: true })
  cleanedAt!: Date | null;

  @Column('timestamptz', { name: 'updated_at' })
  updatedAt!: Date;

  @Column('bigint', { name: 'log_bytes', transformer: bigintAsNumber })
  logBytes!: number;

  @Column('bigint', { name: 'log_lines', transformer: bigintAsNumber })
  logLines!: number;

  @Column('boolean', { name: 'log_truncated' })
  logTruncated!: boolean;

  /** Seq of the last line on disk (or of the line the truncation marker replaced). */
  @Column('bigint', { name: 'log_last_seq', transformer: bigintAsNumber })
  logLastSeq!: number;

  /** What the stored log keeps past LOG_MAX_BYTES (see {@link LogKeep}). */
  @Column('text', { name: 'log_keep' })
  logKeep!: LogKeep;

  /** How its runner captured its output (see {@link LogMode}); null until a runner takes it. */
  @Column('text', { name: 'log_mode', nullable: true })
  logMode!: LogMode | null;

  /** The log has a gap where output was not captured (fast mode, no runner attached); a system line there says when. */
  @Column('boolean', { name: 'log_lines_lost' })
  logLinesLost!: boolean;
}

/** What a job row is when it is submitted; `init` holds what the submitter chose. */
export function newJobEntity(
  init: Pick<JobEntity, 'id' | 'tenant' | 'image' | 'command' | 'env' | 'secretNames' | 'timeoutSeconds' | 'limits' | 'labels' | 'network'> &
    Partial<JobEntity>,
): JobEntity {
  const now = new Date();
  return Object.assign(new JobEntity(), {
    status: JobStatus.Pending,
    exitCode: null,
    errorCode: null,
    errorMessage: null,
    runnerId: null,
    createdAt: now,
    startedAt: null,
    runningAt: null,
    finishedAt: null,
    cleanedAt: null,
    updatedAt: now,
    logBytes: 0,
    logLines: 0,
    logTruncated: false,
    logLastSeq: 0,
    logKeep: LogKeep.Head,
    logMode: null,
    logLinesLost: false,
    ...init,
  });
}
