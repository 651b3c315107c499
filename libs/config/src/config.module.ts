import { Global, Inject, Module, OnApplicationShutdown } from '@nestjs/common';
import type { DefaultJobOptions, JobsOptions, QueueOptions } from 'bullmq';
import { RedisOptions } from 'ioredis';
import { LoggerModule } from 'nestjs-pino';
import { redisKeys, RedisKeys } from '@flashpods/contracts';
import { FlashpodsConfig, getConfig } from './flashpods.config';
import { RedisClient } from './redis-client';
import { createRedis } from './redis.factory';
import { loggerModuleParams } from './service-logger';

export const CONFIG = Symbol('FLASHPODS_CONFIG');
export const REDIS = Symbol('FLASHPODS_REDIS');
export const REDIS_KEYS = Symbol('FLASHPODS_REDIS_KEYS');

/** Options for every BullMQ queue and worker: connection, prefix and job retention in one place. */
export function bullRootOptions(config: FlashpodsConfig, name: string, extra: RedisOptions = {}): QueueOptions {
  const defaultJobOptions: DefaultJobOptions = {
    // A job's container is never re-run by BullMQ: a lost runner is detected and reported instead.
    attempts: 1,
    removeOnComplete: { age: 3600, count: 10000 },
    removeOnFail: { age: 7 * 24 * 3600 },
  };
  return {
    connection: createRedis(config, `bull-${name}`, extra),
    prefix: keysOf(config).bullPrefix,
    defaultJobOptions,
  };
}

/**
 * Options of a `run-job` queue entry, wherever it is enqueued (the API on submit, the liveness
 * sweep for a `pending` job whose entry was lost). The job id is the queue entry's id, so a job
 * is never queued twice; retries are safe because the runner's claim in Postgres lets a job start
 * only once, and they cover a runner that could not reach Postgres to claim it.
 */
export function runJobOptions(jobId: string): JobsOptions {
  return { jobId, attempts: 10, backoff: { type: 'exponential', delay: 1000 } };
}

/** The key names for this configuration (BullMQ's prefix depends on whether Redis is a cluster). */
export function keysOf(config: FlashpodsConfig): RedisKeys {
  return redisKeys(config.redis.prefix, { cluster: config.redis.cluster !== undefined });
}

class RedisCloser implements OnApplicationShutdown {
  constructor(@Inject(REDIS) private readonly redis: RedisClient) {}
  async onApplicationShutdown(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

/** The validated config, the process's command connection to Redis, its key names, and its logger (pino). */
@Global()
@Module({
  imports: [LoggerModule.forRootAsync({ useFactory: loggerModuleParams })],
  providers: [
    { provide: CONFIG, useFactory: () => getConfig() },
    { provide: REDIS, inject: [CONFIG], useFactory: (c: FlashpodsConfig) => createRedis(c, 'commands') },
    { provide: REDIS_KEYS, inject: [CONFIG], useFactory: (c: FlashpodsConfig): RedisKeys => keysOf(c) },
    RedisCloser,
  ],
  exports: [CONFIG, REDIS, REDIS_KEYS],
})
export class FlashpodsConfigModule {}
