import { FlashpodsConfig } from '@flashpods/config';
import { redisKeys } from '@flashpods/contracts';
import { createDataSource, migrate } from '@flashpods/database';
import Redis from 'ioredis';
import { DataSource } from 'typeorm';
import { createTestWorld, TestWorld } from '../../../../test/support/test-env';
import { TokenService } from './token.service';

/** The cache's edges against a revocation, on the real Postgres and Redis, interleaved by hand. */
describe('TokenService cache and revocation (real Postgres and Redis)', () => {
  let world: TestWorld;
  let ds: DataSource;
  let redis: Redis;
  let tokens: TokenService;
  const keys = () => redisKeys(world.redisPrefix);
  /** What `RateLimiter.take` reads: whether the mark says live. */
  const live = async (tokenId: string) => (await redis.get(keys().tokenMark(tokenId))) === 'live';

  beforeAll(async () => {
    world = await createTestWorld();
    ds = await createDataSource(world.databaseUrl, 2).initialize();
    await migrate(ds);
    redis = new Redis(world.env.REDIS_URL);
    tokens = new TokenService({ api: { adminToken: world.env.FLASHPODS_ADMIN_TOKEN } } as FlashpodsConfig, ds, redis, keys());
  });
  afterAll(async () => {
    redis.disconnect();
    await ds.destroy();
    await world.dispose();
  });

  it('a lookup that read Postgres before a revocation cannot mark the token live after it', async () => {
    const { id, token } = await tokens.create('race-a', 'x');
    const auth = (await tokens.authenticate(token))!;
    expect(auth).toMatchObject({ confirmed: true, caller: { tokenId: id, tenant: 'race-a', admin: false } });
    await tokens.revoke(id);
    // The request that was in flight still stands (it was confirmed before the revocation)…
    expect(await tokens.settle(token, auth, await live(id))).toBe(true);
    // …but it did not mark the token live: the next request, from the cache, asks Postgres.
    expect(await redis.get(keys().tokenMark(id))).toBe('revoked');
    const next = (await tokens.authenticate(token))!;
    expect(next.confirmed).toBe(false);
    expect(await tokens.settle(token, next, await live(id))).toBe(false);
    // And once refused, it is no longer cached: Postgres finds no standing token.
    expect(await tokens.authenticate(token)).toBeUndefined();
  });

  it('a live mark set just before a revocation is replaced by it', async () => {
    const { id, token } = await tokens.create('race-b', 'x');
    const auth = (await tokens.authenticate(token))!;
    expect(await tokens.settle(token, auth, false)).toBe(true);
    expect(await live(id)).toBe(true);
    const cached = (await tokens.authenticate(token))!;
    expect([cached.confirmed, await tokens.settle(token, cached, await live(id))]).toEqual([false, true]);
    await tokens.revoke(id);
    expect(await live(id)).toBe(false);
    expect(await tokens.settle(token, (await tokens.authenticate(token))!, await live(id))).toBe(false);
  });

  it('a revocation that fails in Redis changes nothing in Postgres and is reported', async () => {
    const { id, token } = await tokens.create('race-c', 'x');
    const down = new Redis(world.env.REDIS_URL, { lazyConnect: true, enableOfflineQueue: false });
    const cut = new TokenService({ api: { adminToken: 'a' } } as FlashpodsConfig, ds, down, keys());
    try {
      await expect(cut.revoke(id)).rejects.toThrow();
    } finally {
      down.disconnect();
    }
    const [row] = await ds.query('SELECT revoked_at FROM api_tokens WHERE id = $1', [id]);
    expect(row.revoked_at).toBeNull();
    expect((await tokens.authenticate(token))?.caller.tokenId).toBe(id);
  });
});
