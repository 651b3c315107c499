import { Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Logger } from 'nestjs-pino';
import { ConfigError, describeRedis, FlashpodsConfig, getConfig } from './flashpods.config';
import { isCluster, RedisClient } from './redis-client';
import { assertNoEviction, createRedis } from './redis.factory';
import { createServiceLogger } from './service-logger';

/**
 * Validates the environment and Redis's eviction policy before Nest starts; exits with a message
 * naming the problem. Returns the config for the caller's bootstrap, with the process logger
 * made (see service-logger.ts). The two fatal messages (a bad variable, a Redis that evicts) are
 * plain text on stderr: the first comes before there is a valid LOG_FORMAT, and both are read by
 * a person fixing the deployment, not by a log pipeline.
 */
export async function preflight(service: string): Promise<FlashpodsConfig> {
  let config: FlashpodsConfig;
  try {
    config = getConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`[${service}] ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  const log = createServiceLogger(config, service);
  // One retry per command, so an unreachable Redis is reported here instead of waited on silently.
  const redis: RedisClient = createRedis(config, `${service}-preflight`, { maxRetriesPerRequest: 1 });
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        // A cluster client queues commands until the whole cluster answers, retrying forever: wait
        // for it a while instead, so an unreachable cluster is reported here too.
        if (isCluster(redis)) await readyWithin(redis, 5000);
        await assertNoEviction(redis);
        break;
      } catch (err) {
        if (!(err as Error).message.includes('maxmemory-policy')) {
          log.warn(`Redis not reachable at ${describeRedis(config)} (${(err as Error).message}); retrying`);
          await new Promise((r) => setTimeout(r, 2000));
          continue;
        }
        console.error(`[${service}] ${(err as Error).message}`);
        process.exit(2);
      }
    }
  } finally {
    redis.disconnect();
  }
  return config;
}

function readyWithin(redis: RedisClient, ms: number): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      redis.off('ready', onReady);
      reject(new Error(`no ready cluster within ${ms} ms`));
    }, ms);
    const onReady = () => {
      clearTimeout(timer);
      resolve();
    };
    redis.once('ready', onReady);
  });
}

/**
 * Starts a service with no HTTP port (runner, persister, janitor): checks first, then the Nest
 * application context with shutdown hooks, then one line saying it is ready and how.
 */
export async function startWorkerService(
  service: string,
  module: Type<unknown>,
  describe: (config: FlashpodsConfig) => string,
): Promise<void> {
  const config = await preflight(service);
  // Nest's messages go through pino once the logger module is up; until then (module init and
  // bootstrap hooks, which createApplicationContext runs) they are buffered, then written.
  // A service that could not start must not linger half-started (a runner beating its heartbeat
  // with no worker would keep its jobs from being declared lost): it exits, to be restarted.
  const app = await NestFactory.createApplicationContext(module, { bufferLogs: true }).catch((err: Error) => {
    createServiceLogger(config, service).error(`could not start: ${err.stack ?? err.message}`);
    process.exit(1);
  });
  const logger = app.get(Logger);
  app.useLogger(logger);
  // A promise that failed with nobody listening belongs to one job at most: say so loudly, but
  // do not take every other job of this process down with it (Node's default is to exit).
  process.on('unhandledRejection', (err) => logger.error(`unhandled rejection: ${(err as Error)?.stack ?? String(err)}`));
  app.enableShutdownHooks();
  const metrics = config.metrics.port ? `, metrics on http://${config.metrics.host}:${config.metrics.port}/metrics` : ', no metrics endpoint (METRICS_PORT unset)';
  logger.log(`${service} ready: ${describe(config)}${metrics}`);
}
