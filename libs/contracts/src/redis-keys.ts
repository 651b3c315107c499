/** Every Redis key and channel outside BullMQ's own, under one prefix so test runs never meet. */
export function redisKeys(prefix: string) {
  return {
    /** Stream of job ids whose logs must be persisted; read by the persisters' consumer group. */
    activeJobs: `${prefix}:active`,
    /** Consumer group on `activeJobs`. */
    persisterGroup: 'persisters',
    /** Per-job stream of log chunks and status events. */
    jobLog: (jobId: string) => `${prefix}:log:${jobId}`,
    /** Per-job secret values, kept only until the container has started. */
    jobSecrets: (jobId: string) => `${prefix}:secrets:${jobId}`,
    /** How far a job's log has been shipped (a hash): where a restarted runner resumes. */
    jobProgress: (jobId: string) => `${prefix}:progress:${jobId}`,
    /** Set once when a job is declared lost, so only one runner reports it. */
    jobLost: (jobId: string) => `${prefix}:lost:${jobId}`,
    /** Held by the runner currently looking for lost runners. */
    lostRunnerCheck: `${prefix}:lost-runner-check`,
    /** Per-job cancel flag, for a runner that picks the job up after the request. */
    jobCancel: (jobId: string) => `${prefix}:cancel:${jobId}`,
    /** Pub/sub channel on which cancel requests reach whichever runner holds the job. */
    cancelChannel: `${prefix}:cancel`,
    /** Heartbeat of a runner: a key with a TTL. */
    runnerAlive: (runnerId: string) => `${prefix}:runner:${runnerId}`,
    /** Totals and last run of one janitor sweep (a hash). */
    janitorStats: (sweep: string) => `${prefix}:janitor:${sweep}`,
    /** Requests of one token in one rate-limit window. */
    rateLimit: (tokenId: string, window: number) => `${prefix}:rl:${tokenId}:${window}`,
    /** Prefix BullMQ uses for its queues. */
    bullPrefix: `${prefix}:bull`,
  };
}

export type RedisKeys = ReturnType<typeof redisKeys>;
