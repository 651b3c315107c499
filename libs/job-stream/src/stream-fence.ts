import { LINES_FIELDS, RedisKeys, STATUS_FIELDS, StreamEntryType } from '@flashpods/contracts';
import type { Cluster, Redis } from 'ioredis';

/**
 * One writer per job stream. Whoever appends to a job's stream (its runner, the same runner after
 * a restart, or the janitor ending a job whose runner is gone) first *takes* the stream: that
 * bumps the job's fence and makes `fence:holder` the only token the stream accepts. Every append
 * is a Lua script that checks the token, appends and records progress in one step, so a writer
 * that was taken over (a runner declared lost, a zombie process) is refused, never merged.
 * All keys of a job share its `{id}` hash tag, so each script touches one Redis Cluster slot.
 */
export class FencedError extends Error {
  constructor(readonly jobId: string) {
    super(`job ${jobId}: its log stream was taken over by another writer`);
  }
}

/** The job's terminal event is already on its stream: there is nothing left to take. */
export class StreamEndedError extends Error {
  constructor(readonly jobId: string) {
    super(`job ${jobId}: its log stream has already ended`);
  }
}

export function isFenced(err: unknown): boolean {
  return err instanceof FencedError || (err instanceof Error && err.message.startsWith('FENCED'));
}

const FENCED_REPLY = `return redis.error_reply('FENCED stream taken over')`;

/** The owner value once the terminal event is on the stream: nobody may take or write to it again. */
const ENDED = 'ended';

const TAKE = `
if redis.call('GET', KEYS[1]) == '${ENDED}' then return redis.error_reply('ENDED job stream already ended') end
local fence = redis.call('INCR', KEYS[2])
local token = fence .. ':' .. ARGV[1]
redis.call('SET', KEYS[1], token)
return token`;

/**
 * KEYS: owner, stream, progress. ARGV: token, firstSeq, count, data, seq, stdout, stderr, bytes,
 * truncated, ts (of the last line), gap ('1' when the chunk holds a gap line, see LINES_FIELDS).
 */
const SHIP = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then ${FENCED_REPLY} end
if ARGV[11] == '1' then
  redis.call('XADD', KEYS[2], '*', '${LINES_FIELDS.type}', '${StreamEntryType.Lines}', '${LINES_FIELDS.firstSeq}', ARGV[2],
    '${LINES_FIELDS.count}', ARGV[3], '${LINES_FIELDS.data}', ARGV[4], '${LINES_FIELDS.gap}', '1')
else
  redis.call('XADD', KEYS[2], '*', '${LINES_FIELDS.type}', '${StreamEntryType.Lines}', '${LINES_FIELDS.firstSeq}', ARGV[2],
    '${LINES_FIELDS.count}', ARGV[3], '${LINES_FIELDS.data}', ARGV[4])
end
redis.call('HSET', KEYS[3], 'seq', ARGV[5], 'stdout', ARGV[6], 'stderr', ARGV[7], 'bytes', ARGV[8], 'truncated', ARGV[9], 'ts', ARGV[10])
return redis.call('XLEN', KEYS[2])`;

/**
 * KEYS: owner, stream, progress, fence. ARGV: token, event JSON, terminal ('1' or '0'), keep seconds.
 * A terminal event ends the progress record and marks the stream ended: nobody takes it again, and
 * a stale writer is still refused (the keys stay a while after the job has ended).
 */
const STATUS = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then ${FENCED_REPLY} end
redis.call('XADD', KEYS[2], '*', '${STATUS_FIELDS.type}', '${StreamEntryType.Status}', '${STATUS_FIELDS.event}', ARGV[2])
if ARGV[3] == '1' then
  redis.call('DEL', KEYS[3])
  redis.call('SET', KEYS[1], '${ENDED}', 'EX', ARGV[4])
  redis.call('EXPIRE', KEYS[4], ARGV[4])
end
return 1`;

/** How long a terminal job's owner and fence keys outlive it. */
export const FENCE_KEEP_SECONDS = 7 * 24 * 3600;

interface FencedCommands {
  fpTakeStream(owner: string, fence: string, holder: string): Promise<string>;
  fpShip(
    owner: string, stream: string, progress: string,
    token: string, firstSeq: number, count: number, data: Buffer,
    seq: number, stdout: number, stderr: number, bytes: number, truncated: string, ts: number, gap: string,
  ): Promise<number>;
  fpStatus(owner: string, stream: string, progress: string, fence: string, token: string, event: string, terminal: string, keep: number): Promise<number>;
}

/** The connection with the fenced scripts defined on it (once per connection). */
export function fenced(redis: Redis | Cluster): (Redis | Cluster) & FencedCommands {
  const r = redis as (Redis | Cluster) & FencedCommands;
  if (typeof r.fpShip !== 'function') {
    redis.defineCommand('fpTakeStream', { numberOfKeys: 2, lua: TAKE });
    redis.defineCommand('fpShip', { numberOfKeys: 3, lua: SHIP });
    redis.defineCommand('fpStatus', { numberOfKeys: 4, lua: STATUS });
  }
  return r;
}

/**
 * Takes a job's stream for `holder`: every earlier token is refused from now on. Returns the new
 * token; throws StreamEndedError when the job's terminal event is already on the stream.
 */
export async function takeJobStream(redis: Redis | Cluster, keys: RedisKeys, jobId: string, holder: string): Promise<string> {
  try {
    return await fenced(redis).fpTakeStream(keys.jobStreamOwner(jobId), keys.jobStreamFence(jobId), holder);
  } catch (err) {
    if ((err as Error).message.startsWith('ENDED')) throw new StreamEndedError(jobId);
    throw err;
  }
}
