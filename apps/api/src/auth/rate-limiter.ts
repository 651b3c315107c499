import { HttpStatus, Inject, Injectable } from '@nestjs/common';
import { CONFIG, FlashpodsConfig, REDIS, REDIS_KEYS, RedisClient } from '@flashpods/config';
import { RedisKeys } from '@flashpods/contracts';
import { ApiError } from '../common/api-error';

const WINDOW_SECONDS = 60;

/**
 * API_RATE_LIMIT_PER_MINUTE requests per token per minute, counted in Redis so every API instance
 * shares the count (a fixed window: simple, and at most twice the rate across a window edge).
 */
@Injectable()
export class RateLimiter {
  constructor(
    @Inject(CONFIG) private readonly config: FlashpodsConfig,
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(REDIS_KEYS) private readonly keys: RedisKeys,
  ) {}

  async check(tokenId: string): Promise<void> {
    const window = Math.floor(Date.now() / 1000 / WINDOW_SECONDS);
    const key = this.keys.rateLimit(tokenId, window);
    const [[, count]] = (await this.redis.multi().incr(key).expire(key, WINDOW_SECONDS * 2).exec()) as [[null, number]];
    if (count > this.config.api.rateLimitPerMinute) {
      const retryAfter = (window + 1) * WINDOW_SECONDS - Math.floor(Date.now() / 1000);
      throw new ApiError(
        HttpStatus.TOO_MANY_REQUESTS,
        'rate_limited',
        `more than ${this.config.api.rateLimitPerMinute} requests a minute for this token`,
        { 'Retry-After': String(Math.max(1, retryAfter)) },
      );
    }
  }
}
