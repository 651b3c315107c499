/** Every BullMQ queue Flashpods uses. Never name a queue with a bare string. */
export enum QueueName {
  Jobs = 'jobs',
  Janitor = 'janitor',
}

/** Every BullMQ job name, across all queues. */
export enum JobName {
  RunJob = 'run-job',
  TtlSweep = 'ttl-sweep',
  QuotaSweep = 'quota-sweep',
  RetentionSweep = 'retention-sweep',
  OrphanSweep = 'orphan-sweep',
  LivenessSweep = 'liveness-sweep',
}

export interface RunJobPayload {
  jobId: string;
}

export type SweepPayload = Record<string, never>;

/** Payload type per job name, so every enqueue is type-checked. */
export interface JobPayloads {
  [JobName.RunJob]: RunJobPayload;
  [JobName.TtlSweep]: SweepPayload;
  [JobName.QuotaSweep]: SweepPayload;
  [JobName.RetentionSweep]: SweepPayload;
  [JobName.OrphanSweep]: SweepPayload;
  [JobName.LivenessSweep]: SweepPayload;
}

export const SWEEP_JOB_NAMES = [
  JobName.TtlSweep,
  JobName.QuotaSweep,
  JobName.RetentionSweep,
  JobName.OrphanSweep,
  JobName.LivenessSweep,
] as const;
export type SweepJobName = (typeof SWEEP_JOB_NAMES)[number];
