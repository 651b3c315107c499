import Redis, { Cluster } from 'ioredis';

/**
 * A connection to Redis as the services use it: one server (`Redis`) or a Redis Cluster
 * (`Cluster`). Both speak the same commands; what differs is kept to the helpers below: commands
 * over keys of several slots, commands meant for every server (SCAN, CONFIG), and duplicating.
 */
export type RedisClient = Redis | Cluster;

export function isCluster(client: RedisClient): client is Cluster {
  return (client as Cluster).isCluster === true;
}

/**
 * The servers holding data: the one server, or every master of the cluster (after the client is
 * ready, so its slot map is known). For SCAN, CONFIG GET and the like.
 */
export async function dataNodes(client: RedisClient): Promise<Redis[]> {
  if (!isCluster(client)) return [client];
  if (client.status !== 'ready') await client.ping();
  return client.nodes('master');
}

/** GET of several keys: one MGET on one server; on a cluster, one GET per key (they span slots), sent together. */
export async function getMany(client: RedisClient, keys: string[]): Promise<(string | null)[]> {
  if (keys.length === 0) return [];
  if (!isCluster(client)) return client.mget(...keys);
  return Promise.all(keys.map((k) => client.get(k)));
}

/** DEL of keys that may span slots: one DEL on one server; on a cluster, one per key, sent together. */
export async function delMany(client: RedisClient, keys: string[]): Promise<number> {
  if (keys.length === 0) return 0;
  if (!isCluster(client)) return client.del(...keys);
  return (await Promise.all(keys.map((k) => client.del(k)))).reduce((a, b) => a + b, 0);
}

/**
 * Every key matching `pattern`, in batches, from every server holding data (on a cluster a SCAN
 * walks only the node it is sent to).
 */
export async function* scanKeys(client: RedisClient, pattern: string, count = 500): AsyncGenerator<string[]> {
  for (const node of await dataNodes(client)) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', count);
      cursor = next;
      if (keys.length) yield keys;
    } while (cursor !== '0');
  }
}
