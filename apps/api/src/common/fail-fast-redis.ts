import { Inject, Injectable, OnApplicationShutdown, Provider } from '@nestjs/common';
import { CONFIG, createRedis, FlashpodsConfig, REDIS, RedisClient } from '@flashpods/config';
import type { Command, RedisOptions } from 'ioredis';

/**
 * Redis as a request sees it: a command fails at once while Redis is unreachable (no offline
 * queue) and after `commandTimeout` when it hangs, so the request answers `503` with
 * `Retry-After` instead of waiting with the client for as long as Redis is gone. The workers'
 * connections keep the retry-forever settings; they have no client waiting on them.
 */
export const FAIL_FAST: RedisOptions = { enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: 1500 };

/**
 * Fails each command that has no reply `ms` after it was sent, like ioredis' `commandTimeout`, but
 * only once the replies already received have been read. ioredis' own timer fires in the event
 * loop's timers phase, before the poll phase that reads the socket: when the loop has been busy
 * longer than `ms` (a thousand viewers opening their streams at once), a command whose reply came
 * back in a millisecond was failed as timed out, and its request answered 503 with Redis healthy.
 * Here the timer only looks again after the next poll phase (`setImmediate`); a Redis that does not
 * answer still fails the command after about `ms`.
 */
export function failLateCommands(redis: RedisClient, ms: number): RedisClient {
  const send = redis.sendCommand.bind(redis) as (command: Command, ...rest: unknown[]) => unknown;
  redis.sendCommand = ((command: Command, ...rest: unknown[]) => {
    const timer = setTimeout(
      () => setImmediate(() => {
        if (!command.isResolved) command.reject(new Error('Command timed out'));
      }),
      ms,
    );
    command.promise.then(
      () => clearTimeout(timer),
      () => clearTimeout(timer),
    );
    return send(command, ...rest);
  }) as typeof redis.sendCommand;
  return redis;
}

/** Overrides the shared REDIS connection for the API's own providers. */
export const failFastRedisProvider: Provider = {
  provide: REDIS,
  inject: [CONFIG],
  useFactory: (config: FlashpodsConfig) =>
    failLateCommands(createRedis(config, 'api-requests', { ...FAIL_FAST, commandTimeout: undefined }), FAIL_FAST.commandTimeout!),
};

@Injectable()
export class FailFastRedisCloser implements OnApplicationShutdown {
  constructor(@Inject(REDIS) private readonly redis: RedisClient) {}
  async onApplicationShutdown(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
