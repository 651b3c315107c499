import Redis, { Cluster, ClusterOptions, RedisOptions } from 'ioredis';
import { FlashpodsConfig } from './flashpods.config';
import { dataNodes, isCluster, RedisClient } from './redis-client';

/** Options of `createRedis` that only a cluster client has (one server ignores them). */
type ClusterOnly = Pick<ClusterOptions, 'enableOfflineQueue'>;

/**
 * A Redis connection that retries forever (BullMQ requires `maxRetriesPerRequest: null` on
 * blocking connections). Every service makes its connections here so the settings live in one place.
 *
 * With a Redis Cluster configured this is an ioredis `Cluster`: `extra` then applies to each
 * node's connection, and `enableOfflineQueue` to the cluster client too (the API's fail-fast
 * connection must not queue commands while the cluster is unreachable). A MOVED or ASK reply, a
 * failover (the old master answering MOVED, or CLUSTERDOWN / TRYAGAIN while slots move) is
 * retried by ioredis, after refreshing its slot map; only commands spanning slots are refused.
 */
export function createRedis(config: FlashpodsConfig, name: string, extra: RedisOptions = {}): RedisClient {
  const options: RedisOptions = {
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    connectionName: `flashpods:${name}`,
    retryStrategy: (times) => Math.min(times * 200, 2000),
    ...extra,
  };
  const cluster = config.redis.cluster;
  if (!cluster) return new Redis(config.redis.url, options);
  const clusterOptions: ClusterOptions & ClusterOnly = {
    redisOptions: { ...options, username: cluster.username, password: cluster.password },
    enableOfflineQueue: extra.enableOfflineQueue ?? true,
    enableReadyCheck: true,
    clusterRetryStrategy: (times) => Math.min(times * 200, 2000),
    // A failover takes a few seconds: keep retrying a command's redirections through it.
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 300,
    retryDelayOnTryAgain: 200,
    maxRedirections: 64,
    slotsRefreshTimeout: 2000,
  };
  return new Cluster(cluster.nodes, clusterOptions);
}

/**
 * Another connection like `client` with some options changed: one server's `duplicate`, or a new
 * cluster client over the same nodes whose node connections take `override`.
 */
export function duplicateRedis(client: RedisClient, override: RedisOptions = {}): RedisClient {
  if (!isCluster(client)) return client.duplicate(override);
  const { enableOfflineQueue, ...nodeOptions } = override;
  return client.duplicate(undefined, {
    ...(enableOfflineQueue === undefined ? {} : { enableOfflineQueue }),
    redisOptions: { ...client.options.redisOptions, ...nodeOptions },
  });
}

/**
 * BullMQ requires `noeviction`: an evicted queue key loses jobs silently. Refuse anything else,
 * on every server holding data (each master of a cluster has its own setting).
 */
export async function assertNoEviction(redis: RedisClient): Promise<void> {
  for (const node of await dataNodes(redis)) {
    const reply = (await node.config('GET', 'maxmemory-policy')) as string[];
    const policy = reply[1];
    if (policy !== 'noeviction') {
      const where = isCluster(redis) ? ` on cluster node ${node.options.host}:${node.options.port}` : '';
      throw new Error(
        `Redis maxmemory-policy is "${policy}"${where}; Flashpods requires "noeviction" (set it in redis.conf or with CONFIG SET maxmemory-policy noeviction)`,
      );
    }
  }
}
