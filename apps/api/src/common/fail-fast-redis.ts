import { Inject, Injectable, OnApplicationShutdown, Provider } from '@nestjs/common';
import { CONFIG, createRedis, FlashpodsConfig, REDIS, RedisClient } from '@flashpods/config';
import { RedisOptions } from 'ioredis';

/**
 * Redis as a request sees it: a command fails at once while Redis is unreachable (no offline
 * queue) and after `commandTimeout` when it hangs, so the request answers `503` with
 * `Retry-After` instead of waiting with the client for as long as Redis is gone. The workers'
 * connections keep the retry-forever settings; they have no client waiting on them.
 */
export const FAIL_FAST: RedisOptions = { enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: 1500 };

/** Overrides the shared REDIS connection for the API's own providers. */
export const failFastRedisProvider: Provider = {
  provide: REDIS,
  inject: [CONFIG],
  useFactory: (config: FlashpodsConfig) => createRedis(config, 'api-requests', FAIL_FAST),
};

@Injectable()
export class FailFastRedisCloser implements OnApplicationShutdown {
  constructor(@Inject(REDIS) private readonly redis: RedisClient) {}
  async onApplicationShutdown(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
