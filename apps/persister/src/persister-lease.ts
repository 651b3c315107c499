import { RedisKeys } from '@flashpods/contracts';
import { RedisClient } from '@flashpods/config';
import { performance } from 'node:perf_hooks';

/** A job's persister lease as this persister holds it. */
export interface Lease {
  jobId: string;
  fence: number;
  /** The value stored in Redis, `fence|consumer|activeEntryId`; renew and release compare it. */
  value: string;
  /** Monotonic time (ms) just before the last acquire or renewal that succeeded was sent. */
  renewedAt: number;
}

export interface LeaseHolder {
  fence: number;
  consumer: string;
  activeEntryId: string;
}

export type AcquireResult = { acquired: true; lease: Lease } | { acquired: false; holder: LeaseHolder };

/** What `release` found: the lease was ours and is gone, was gone already, or is someone else's. */
export type ReleaseResult = 'released' | 'absent' | 'other';

// Each script touches only keys of one job (same `{jobId}` hash tag), so it runs on a Redis Cluster.
const ACQUIRE = `
local held = redis.call('GET', KEYS[1])
if held then return {0, held} end
local fence = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], 86400000)
local value = fence .. '|' .. ARGV[1] .. '|' .. ARGV[2]
redis.call('SET', KEYS[1], value, 'PX', ARGV[3])
return {1, value}`;

const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;

const RELEASE = `
local held = redis.call('GET', KEYS[1])
if not held then return 0 end
if held == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return -1`;

/** Trims the job's stream only while the lease is ours, in the same step: a stale owner cannot trim lines its successor has not read. */
const FENCED_TRIM = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
return redis.call('XTRIM', KEYS[2], 'MINID', ARGV[2])`;

interface LeaseCommands {
  fpLeaseAcquire(lease: string, fence: string, consumer: string, entryId: string, ttlMs: number): Promise<[number, string]>;
  fpLeaseRenew(lease: string, value: string, ttlMs: number): Promise<number>;
  fpLeaseRelease(lease: string, value: string): Promise<number>;
  fpLeaseTrim(lease: string, stream: string, value: string, minId: string): Promise<number>;
}

/**
 * Which persister may write a job's files: the holder of the job's lease, a Redis key with a TTL
 * whose value carries a fence (from a per-job counter), the holder's consumer name and the
 * `active` entry it holds the job by. The consumer group only finds jobs and hands them over; the
 * lease decides. A holder renews every TTL/3 and, before each write, checks on its own monotonic
 * clock that the lease cannot have expired (`isValid`), so a persister stalled past the TTL stops
 * without asking Redis.
 */
export class PersisterLeases {
  private readonly redis: RedisClient & LeaseCommands;
  /** A lease is trusted locally only until this long before Redis could let it expire. */
  readonly marginMs: number;

  constructor(
    redis: RedisClient,
    private readonly keys: RedisKeys,
    private readonly consumer: string,
    readonly ttlMs: number,
  ) {
    redis.defineCommand('fpLeaseAcquire', { numberOfKeys: 2, lua: ACQUIRE });
    redis.defineCommand('fpLeaseRenew', { numberOfKeys: 1, lua: RENEW });
    redis.defineCommand('fpLeaseRelease', { numberOfKeys: 1, lua: RELEASE });
    redis.defineCommand('fpLeaseTrim', { numberOfKeys: 2, lua: FENCED_TRIM });
    this.redis = redis as RedisClient & LeaseCommands;
    // Renewals come every TTL/3; trusting a lease for 2/3 of the TTL leaves one renewal of slack.
    this.marginMs = Math.ceil(ttlMs / 3);
  }

  /** Takes the job's lease if nobody holds it; otherwise says who does. */
  async acquire(jobId: string, activeEntryId: string): Promise<AcquireResult> {
    const sentAt = performance.now();
    const [ok, value] = await this.redis.fpLeaseAcquire(
      this.keys.jobPersisterLease(jobId), this.keys.jobPersisterFence(jobId), this.consumer, activeEntryId, this.ttlMs,
    );
    if (ok === 1) return { acquired: true, lease: { jobId, fence: parseLease(value).fence, value, renewedAt: sentAt } };
    return { acquired: false, holder: parseLease(value) };
  }

  /**
   * Renews the leases still ours; returns which were. The renewals are sent together, not as one
   * pipeline: on a Redis Cluster each job's lease is in its own slot, and an ioredis pipeline must
   * stay on one node. ioredis writes them back to back, so on one server it is one round trip still.
   */
  async renew(leases: Lease[]): Promise<boolean[]> {
    if (leases.length === 0) return [];
    const sentAt = performance.now();
    const replies = await Promise.allSettled(
      leases.map((l) => this.redis.fpLeaseRenew(this.keys.jobPersisterLease(l.jobId), l.value, this.ttlMs)),
    );
    // A renewal that failed (Redis unreachable, a failover outlasting the retries) says nothing of
    // whose the lease is: the caller retries; until then `isValid` keeps writes safe.
    const failed = replies.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    return leases.map((l, i) => {
      const r = replies[i] as PromiseFulfilledResult<number>;
      if (r.value !== 1) return false;
      l.renewedAt = Math.max(l.renewedAt, sentAt);
      return true;
    });
  }

  async release(lease: Lease): Promise<ReleaseResult> {
    const r = await this.redis.fpLeaseRelease(this.keys.jobPersisterLease(lease.jobId), lease.value);
    return r === 1 ? 'released' : r === 0 ? 'absent' : 'other';
  }

  /** XTRIM MINID of the job's stream if the lease is still ours; false if it is not. */
  async trim(lease: Lease, minId: string): Promise<boolean> {
    return (await this.redis.fpLeaseTrim(this.keys.jobPersisterLease(lease.jobId), this.keys.jobLog(lease.jobId), lease.value, minId)) >= 0;
  }

  /** Whether the lease is surely still ours: checked before every write, without a round trip. */
  isValid(lease: Lease): boolean {
    return performance.now() < lease.renewedAt + this.ttlMs - this.marginMs;
  }
}

export function parseLease(value: string): LeaseHolder {
  const [fence, consumer, activeEntryId] = value.split('|');
  return { fence: Number(fence), consumer: consumer ?? '', activeEntryId: activeEntryId ?? '' };
}
