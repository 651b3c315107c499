/**
 * Every Redis key and channel outside BullMQ's own, under one prefix so test runs never meet.
 * A job's own keys carry the job id as a hash tag (`{id}`), so they share one Redis Cluster slot
 * and one Lua script may touch them together (the fenced publish checks the owner, appends to the
 * stream and records progress in one step); different jobs' keys spread over the shards.
 * Every other key is a single-key command's (or a script's single key), so on a cluster it may
 * live anywhere; commands over several of them are split per key by the services.
 *
 * `cluster`: BullMQ's own keys must then share one slot (its scripts touch many keys of a queue):
 * its prefix becomes `{prefix}:bull`, a hash tag. On one server it stays `prefix:bull`, as before.
 */
export function redisKeys(prefix: string, options: { cluster?: boolean } = {}) {
  const job = (kind: string) => (jobId: string) => `${prefix}:${kind}:{${jobId}}`;
  return {
    /** Stream of job ids whose logs must be persisted; read by the persisters' consumer group. */
    activeJobs: `${prefix}:active`,
    /** Consumer group on `activeJobs`. */
    persisterGroup: 'persisters',
    /** Per-job stream of log chunks and status events. */
    jobLog: job('log'),
    /** SCAN pattern matching every job's log stream. */
    jobLogPattern: `${prefix}:log:{*}`,
    /** The job id of a `jobLog` key, or undefined for another key. */
    jobIdOfLogKey: (key: string): string | undefined => {
      const head = `${prefix}:log:{`;
      return key.startsWith(head) && key.endsWith('}') ? key.slice(head.length, -1) : undefined;
    },
    /** Per-job secret values, kept only until the container has started. */
    jobSecrets: job('secrets'),
    /** How far a job's log has been shipped (a hash): where a restarted runner resumes. */
    jobProgress: job('progress'),
    /**
     * Who may append to a job's stream: `fence:holder`. Taking a job's stream bumps the fence, so
     * every earlier holder (a runner declared lost, a runner's previous life) is refused from then on.
     */
    jobStreamOwner: job('owner'),
    /** Per-job counter of stream fences handed out. */
    jobStreamFence: job('fence'),
    /** Lease of the persister writing a job's files: `fence|consumer|activeEntryId`, with a TTL. */
    jobPersisterLease: job('plock'),
    /** Per-job counter of persister lease fences handed out. */
    jobPersisterFence: job('pfence'),
    /** Per-job cancel flag, for a runner that picks the job up after the request. */
    jobCancel: job('cancel'),
    /** Pub/sub channel on which cancel requests reach whichever runner holds the job. */
    cancelChannel: `${prefix}:cancel`,
    /** Heartbeat of a runner: a key with a TTL. */
    runnerAlive: (runnerId: string) => `${prefix}:runner:${runnerId}`,
    /** When the liveness sweep first found a runner's heartbeat missing (Redis time, ms). */
    runnerSuspect: (runnerId: string) => `${prefix}:suspect:${runnerId}`,
    /** Totals and last run of one janitor sweep (a hash). */
    janitorStats: (sweep: string) => `${prefix}:janitor:${sweep}`,
    /**
     * Requests of one token in one rate-limit window. The token id is a hash tag: the token's
     * mark below is in the same slot, and one script counts the request and reads the mark.
     */
    rateLimit: (tokenId: string, window: number) => `${prefix}:rl:{${tokenId}}:${window}`,
    /**
     * Whether an API instance may trust its cached lookup of a token: `live` (set, with a TTL,
     * after Postgres said so) or `revoked` (set before a revocation commits, and never replaced).
     * No mark, or `revoked`: the token is looked up in Postgres again.
     */
    tokenMark: (tokenId: string) => `${prefix}:token:{${tokenId}}`,
    /** A log ticket (by the SHA-256 of the ticket, hex): the job and caller it opens, with a TTL. */
    logTicket: (digestHex: string) => `${prefix}:ticket:${digestHex}`,
    /** Prefix BullMQ uses for its queues (a hash tag on a cluster, see above). */
    bullPrefix: options.cluster ? `{${prefix}}:bull` : `${prefix}:bull`,
  };
}

export type RedisKeys = ReturnType<typeof redisKeys>;
