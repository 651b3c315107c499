import Redis, { RedisOptions } from 'ioredis';
import { FlashpodsConfig } from './flashpods.config';

/**
 * A Redis connection that retries forever (BullMQ requires `maxRetriesPerRequest: null` on
 * blocking connections). Every service makes its connections here so the settings live in one place.
 */
export function createRedis(config: FlashpodsConfig, name: string, extra: RedisOptions = {}): Redis {
  return new Redis(config.redis.url, {
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    connectionName: `flashpods:${name}`,
    retryStrategy: (times) => Math.min(times * 200, 2000),
    ...extra,
  });
}

/** BullMQ requires `noeviction`: an evicted queue key loses jobs silently. Refuse anything else. */
export async function assertNoEviction(redis: Redis): Promise<void> {
  const reply = (await redis.config('GET', 'maxmemory-policy')) as string[];
  const policy = reply[1];
  if (policy !== 'noeviction') {
    throw new Error(
      `Redis maxmemory-policy is "${policy}"; Flashpods requires "noeviction" (set it in redis.conf or with CONFIG SET maxmemory-policy noeviction)`,
    );
  }
}
