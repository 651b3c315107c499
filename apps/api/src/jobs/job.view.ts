import { JobEntity } from '@flashpods/database';

/** How a job looks over the API: snake_case, no secret values, log summary included. */
export function jobView(job: JobEntity) {
  return {
    id: job.id,
    tenant: job.tenant,
    status: job.status,
    image: job.image,
    command: job.command,
    env: job.env,
    secrets: job.secretNames,
    labels: job.labels,
    timeout_seconds: job.timeoutSeconds,
    limits: { memory_mb: job.limits.memoryMb, cpus: job.limits.cpus, pids: job.limits.pids },
    network: job.network,
    exit_code: job.exitCode,
    error: job.errorCode ? { code: job.errorCode, message: job.errorMessage ?? '' } : null,
    runner_id: job.runnerId,
    created_at: job.createdAt.toISOString(),
    started_at: job.startedAt?.toISOString() ?? null,
    running_at: job.runningAt?.toISOString() ?? null,
    finished_at: job.finishedAt?.toISOString() ?? null,
    cleaned_at: job.cleanedAt?.toISOString() ?? null,
    log_keep: job.logKeep,
    log: { bytes: job.logBytes, lines: job.logLines, truncated: job.logTruncated, mode: job.logMode, lines_lost: job.logLinesLost },
  };
}

export type JobView = ReturnType<typeof jobView>;
