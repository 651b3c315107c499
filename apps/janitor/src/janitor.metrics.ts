import { createServiceRegistry } from '@flashpods/config';
import { JobErrorCode, JobStatus, SWEEP_JOB_NAMES, StatusEvent } from '@flashpods/contracts';
import { Counter, Gauge, Histogram } from 'prom-client';
import type { SweepOutcome } from './sweep.processor';

/**
 * Every metric of the janitor, in one place. Sweep results are counted from the sweep worker's
 * events (janitor-metrics.endpoint.ts), so the sweeps themselves carry no metrics code; the
 * liveness sweep calls the one-line recorders below for the jobs it ends or enqueues again.
 * Counters are per process: with N janitors, sum them (each sweep run happens on one janitor).
 */
export const janitorRegistry = createServiceRegistry('janitor');
const registers = [janitorRegistry];
const sweepLabel = ['sweep'] as const;

const sweeps = new Counter({
  name: 'flashpods_janitor_sweeps_total',
  help: 'Sweep runs, by sweep and result: done, skipped (another janitor held its lock) or failed',
  labelNames: ['sweep', 'result'],
  registers,
});
const deletedJobs = new Counter({
  name: 'flashpods_janitor_deleted_jobs_total',
  help: 'Jobs a sweep acted on: logs cleaned (ttl, quota), records deleted (retention), orphans removed, jobs ended or enqueued again (liveness)',
  labelNames: sweepLabel,
  registers,
});
const deletedFiles = new Counter({ name: 'flashpods_janitor_deleted_files_total', help: 'Files deleted by sweeps', labelNames: sweepLabel, registers });
const deletedBytes = new Counter({ name: 'flashpods_janitor_deleted_bytes_total', help: 'Bytes of the files deleted by sweeps', labelNames: sweepLabel, registers });
const duration = new Histogram({
  name: 'flashpods_janitor_sweep_duration_seconds',
  help: 'How long a sweep run took (runs that did the sweep only)',
  labelNames: sweepLabel,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
  registers,
});
const lastRun = new Gauge({
  name: 'flashpods_janitor_last_sweep_timestamp_seconds',
  help: 'When this janitor last finished a run of the sweep (Unix time)',
  labelNames: sweepLabel,
  registers,
});
const jobsEnded = new Counter({
  name: 'flashpods_janitor_jobs_ended_total',
  help: 'Active jobs the liveness sweep ended (past their timeout, or their runner lost), by status and error code',
  labelNames: ['status', 'error_code'],
  registers,
});
const jobsRequeued = new Counter({
  name: 'flashpods_janitor_jobs_requeued_total',
  help: 'Pending jobs whose queue entry was gone, enqueued again by the liveness sweep',
  registers,
});

// Series exported at 0 from the start, so a rate() has a first point before the first event.
for (const sweep of SWEEP_JOB_NAMES) {
  for (const result of ['done', 'skipped', 'failed']) sweeps.inc({ sweep, result }, 0);
  deletedJobs.inc({ sweep }, 0);
  deletedFiles.inc({ sweep }, 0);
  deletedBytes.inc({ sweep }, 0);
}
// The two ways the liveness sweep ends a job.
jobsEnded.inc({ status: JobStatus.TimedOut, error_code: 'none' }, 0);
jobsEnded.inc({ status: JobStatus.Failed, error_code: JobErrorCode.RunnerLost }, 0);

export const janitorMetrics = {
  /** What a sweep run returned (the processor's result). */
  swept(outcome: SweepOutcome): void {
    if ('skipped' in outcome) {
      sweeps.inc({ sweep: outcome.sweep, result: 'skipped' });
      return;
    }
    const sweep = outcome.sweep;
    sweeps.inc({ sweep, result: 'done' });
    deletedJobs.inc({ sweep }, outcome.jobs);
    deletedFiles.inc({ sweep }, outcome.files);
    deletedBytes.inc({ sweep }, outcome.bytes);
    duration.observe({ sweep }, outcome.ms / 1000);
    lastRun.set({ sweep }, Date.now() / 1000);
  },
  sweepFailed(sweep: string): void {
    sweeps.inc({ sweep, result: 'failed' });
  },
  ended(event: StatusEvent): void {
    jobsEnded.inc({ status: event.status, error_code: event.error?.code ?? 'none' });
  },
  requeued: () => jobsRequeued.inc(),
};
