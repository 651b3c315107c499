import { Global, Inject, Module, OnApplicationShutdown } from '@nestjs/common';
import type { DefaultJobOptions, QueueOptions } from 'bullmq';
import Redis from 'ioredis';
import { redisKeys, RedisKeys } from '@flashpods/contracts';
import { FlashpodsConfig, getConfig } from './flashpods.config';
import { createRedis } from './redis.factory';

export const CONFIG = Symbol('FLASHPODS_CONFIG');
export const REDIS = Symbol('FLASHPODS_REDIS');
export const REDIS_KEYS = Symbol('FLASHPODS_REDIS_KEYS');

/** Options for every BullMQ queue and worker: connection, prefix and job retention in one place. */
export function bullRootOptions(config: FlashpodsConfig, name: string): QueueOptions {
  const defaultJobOptions: DefaultJobOptions = {
    // A job's container is never re-run by BullMQ: a lost runner is detected and reported instead.
    attempts: 1,
    removeOnComplete: { age: 3600, count: 10000 },
    removeOnFail: { age: 7 * 24 * 3600 },
  };
  return {
    connection: createRedis(config, `bull-${name}`),
    prefix: redisKeys(config.redis.prefix).bullPrefix,
    defaultJobOptions,
  };
}

class RedisCloser implements OnApplicationShutdown {
  constructor(@Inject(REDIS) private readonly redis: Redis) {}
  async onApplicationShutdown(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

/** The validated config, the process's command connection to Redis, and its key names. */
@Global()
@Module({
  providers: [
    { provide: CONFIG, useFactory: () => getConfig() },
    { provide: REDIS, inject: [CONFIG], useFactory: (c: FlashpodsConfig) => createRedis(c, 'commands') },
    { provide: REDIS_KEYS, inject: [CONFIG], useFactory: (c: FlashpodsConfig): RedisKeys => redisKeys(c.redis.prefix) },
    RedisCloser,
  ],
  exports: [CONFIG, REDIS, REDIS_KEYS],
})
export class FlashpodsConfigModule {}
