import { createServiceRegistry } from '@flashpods/config';
import { JobErrorCode, JobStatus, LogStream, StatusEvent } from '@flashpods/contracts';
import { JobEntity } from '@flashpods/database';
import { PublisherObserver } from '@flashpods/job-stream';
import { Counter, Gauge, Histogram } from 'prom-client';

/**
 * Every metric of the runner, in one place; the code that runs jobs only calls the one-line
 * recorders of `runnerMetrics`. Served on METRICS_PORT by runner-metrics.endpoint.ts.
 * Durations in seconds; no label carries user data (statuses and error codes are enums).
 */
export const runnerRegistry = createServiceRegistry('runner');
const registers = [runnerRegistry];

const jobsStarted = new Counter({
  name: 'flashpods_runner_jobs_started_total',
  help: 'Jobs this runner claimed (pending to starting) and began to run',
  registers,
});
const jobsResumed = new Counter({
  name: 'flashpods_runner_jobs_resumed_total',
  help: 'Jobs left running by a previous run of this runner and re-attached',
  registers,
});
const logGaps = new Counter({
  name: 'flashpods_runner_log_gaps_total',
  help: 'Gaps marked in job logs: a fast-mode container resumed after writing while no runner was attached',
  registers,
});
const jobsFinished = new Counter({
  name: 'flashpods_runner_jobs_finished_total',
  help: 'Jobs this runner ended, by terminal status and error code ("none" when the job has no error)',
  labelNames: ['status', 'error_code'],
  registers,
});
const jobDuration = new Histogram({
  name: 'flashpods_runner_job_duration_seconds',
  help: 'From claim to terminal status (image pull included), by terminal status',
  labelNames: ['status'],
  buckets: [0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600],
  registers,
});
const queueWait = new Histogram({
  name: 'flashpods_runner_job_queue_wait_seconds',
  help: 'From submission (created_at) to the claim by this runner',
  buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600],
  registers,
});
const capturedLines = new Counter({
  name: 'flashpods_runner_captured_lines_total',
  help: 'Lines read from workloads, by stream (before the LOG_MAX_BYTES cap; lines replayed after a restart count once)',
  labelNames: ['stream'],
  registers,
});
const capturedBytes = new Counter({
  name: 'flashpods_runner_captured_bytes_total',
  help: 'Bytes of the lines read from workloads, newlines excluded, by stream',
  labelNames: ['stream'],
  registers,
});
const shippedChunks = new Counter({
  name: 'flashpods_runner_shipped_chunks_total',
  help: 'Chunks of lines acknowledged by Redis on job streams',
  registers,
});
const shippedLines = new Counter({
  name: 'flashpods_runner_shipped_lines_total',
  help: 'Lines in the chunks shipped (system lines and truncation markers included, lines past the cap not)',
  registers,
});
const shippedBytes = new Counter({
  name: 'flashpods_runner_shipped_bytes_total',
  help: 'Encoded bytes of the chunks shipped',
  registers,
});
const backpressureWaits = new Counter({
  name: 'flashpods_runner_backpressure_waits_total',
  help: 'Times two chunks of a job were still on their way (Redis or the persister behind), so reading the workload paused',
  registers,
});
const streamFullWaits = new Counter({
  name: 'flashpods_runner_stream_full_waits_total',
  help: 'Times a job stream held more than STREAM_MAX_UNPERSISTED_ENTRIES entries (persister behind) and the runner waited',
  registers,
});
const streamFullSeconds = new Counter({
  name: 'flashpods_runner_stream_full_wait_seconds_total',
  help: 'Time spent waiting for a full job stream to drain',
  registers,
});
let runningJobs = (): number => 0;
new Gauge({
  name: 'flashpods_runner_jobs_running',
  help: 'Jobs this runner is running now',
  registers,
  collect() {
    this.set(runningJobs());
  },
});
export const concurrency = new Gauge({ name: 'flashpods_runner_concurrency', help: 'RUNNER_CONCURRENCY: jobs this runner runs at once', registers });

// The usual outcomes exported at 0 from the start, so a rate() has a first point before the first one.
for (const [status, errorCode] of [
  [JobStatus.Completed, 'none'],
  [JobStatus.Failed, JobErrorCode.NonzeroExit],
  [JobStatus.TimedOut, 'none'],
  [JobStatus.Cancelled, 'none'],
]) {
  jobsFinished.inc({ status, error_code: errorCode }, 0);
}
for (const stream of ['stdout', 'stderr']) {
  capturedLines.inc({ stream }, 0);
  capturedBytes.inc({ stream }, 0);
}

// Children bound once: a labelled inc() hashes its labels on every call.
const capturedStdout = { lines: capturedLines.labels('stdout'), bytes: capturedBytes.labels('stdout') };
const capturedStderr = { lines: capturedLines.labels('stderr'), bytes: capturedBytes.labels('stderr') };

/** When this process claimed a job, by the entity it runs (a WeakMap: nothing to forget). */
const claimedAt = new WeakMap<JobEntity, number>();

const publisherObserver: PublisherObserver = {
  chunkShipped(lines, bytes) {
    shippedChunks.inc();
    shippedLines.inc(lines);
    shippedBytes.inc(bytes);
  },
  backpressureWait: () => backpressureWaits.inc(),
  streamFullWait(seconds) {
    streamFullWaits.inc();
    streamFullSeconds.inc(seconds);
  },
};

export const runnerMetrics = {
  /** For the publisher's settings: counts chunks shipped and waits. */
  publisher: publisherObserver,

  /** The claim succeeded: the job starts here. */
  claimed(job: JobEntity): void {
    claimedAt.set(job, Date.now());
    jobsStarted.inc();
    queueWait.observe(Math.max(0, Date.now() - job.createdAt.getTime()) / 1000);
  },

  resumed(): void {
    jobsResumed.inc();
  },

  gap(): void {
    logGaps.inc();
  },

  /** `recordedAsFailed`: Redis refused the end, so it was recorded in Postgres as `failed`. */
  finished(job: JobEntity, outcome: Pick<StatusEvent, 'status' | 'error'>, recordedAsFailed = false): void {
    const status = recordedAsFailed ? JobStatus.Failed : outcome.status;
    const errorCode = recordedAsFailed ? (outcome.error?.code ?? JobErrorCode.RunnerError) : (outcome.error?.code ?? 'none');
    jobsFinished.inc({ status, error_code: errorCode });
    const since = claimedAt.get(job) ?? job.startedAt?.getTime();
    if (since !== undefined) jobDuration.observe({ status }, Math.max(0, Date.now() - since) / 1000);
  },

  /** Lines (and their bytes) read from one stream, counted per read, not per line: this is the hot path. */
  captured(stream: LogStream.Stdout | LogStream.Stderr, lines: number, bytes: number): void {
    const c = stream === LogStream.Stdout ? capturedStdout : capturedStderr;
    c.lines.inc(lines);
    c.bytes.inc(bytes);
  },
};

/** The running-jobs gauge reads this at scrape time (set by the endpoint, which knows the runner service). */
export function countRunningJobs(count: () => number): void {
  runningJobs = count;
}
