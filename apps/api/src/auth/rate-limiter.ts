import { HttpStatus, Inject, Injectable } from '@nestjs/common';
import { CONFIG, FlashpodsConfig, REDIS, REDIS_KEYS, RedisClient } from '@flashpods/config';
import { RedisKeys } from '@flashpods/contracts';
import { ApiError } from '../common/api-error';

const WINDOW_SECONDS = 60;

/**
 * KEYS: the token's counter in this window, the token's mark (same slot: the token id is their
 * hash tag). ARGV: the counter's TTL. Counts the request; answers the count and whether the mark
 * says `live`, in one round trip.
 */
const TAKE = `
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local mark = redis.call('GET', KEYS[2])
if mark == 'live' then return {n, 1} end
return {n, 0}
`;

interface TakeCommand {
  fpRateTake(counter: string, mark: string, ttlSeconds: number): Promise<[number, number]>;
}

/** What one request of a token found: its count in this window, and whether its mark says `live`. */
export interface Taken {
  count: number;
  live: boolean;
}

/**
 * API_RATE_LIMIT_PER_MINUTE requests per token per minute, counted in Redis so every API instance
 * shares the count (a fixed window: simple, and at most twice the rate across a window edge).
 * The same script reads the token's mark (see `TokenService`): one EVALSHA per request for both.
 */
@Injectable()
export class RateLimiter {
  private readonly redis: RedisClient & TakeCommand;

  constructor(
    @Inject(CONFIG) private readonly config: FlashpodsConfig,
    @Inject(REDIS) redis: RedisClient,
    @Inject(REDIS_KEYS) private readonly keys: RedisKeys,
  ) {
    redis.defineCommand('fpRateTake', { numberOfKeys: 2, lua: TAKE });
    this.redis = redis as RedisClient & TakeCommand;
  }

  /** Counts one request of the token; does not refuse it (see `assertWithin`). */
  async take(tokenId: string): Promise<Taken> {
    const window = Math.floor(Date.now() / 1000 / WINDOW_SECONDS);
    const [count, live] = await this.redis.fpRateTake(this.keys.rateLimit(tokenId, window), this.keys.tokenMark(tokenId), WINDOW_SECONDS * 2);
    return { count, live: live === 1 };
  }

  /** 429 with `Retry-After` when `taken` is over the limit. */
  assertWithin(taken: Taken): void {
    if (taken.count <= this.config.api.rateLimitPerMinute) return;
    const window = Math.floor(Date.now() / 1000 / WINDOW_SECONDS);
    const retryAfter = (window + 1) * WINDOW_SECONDS - Math.floor(Date.now() / 1000);
    throw new ApiError(
      HttpStatus.TOO_MANY_REQUESTS,
      'rate_limited',
      `more than ${this.config.api.rateLimitPerMinute} requests a minute for this token`,
      { 'Retry-After': String(Math.max(1, retryAfter)) },
    );
  }
}
