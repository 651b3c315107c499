import Redis from 'ioredis';
import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { freePort, Stack } from '../support/stack';
import { waitFor } from '../support/test-env';

/**
 * Two API instances on one Redis and one Postgres. Each caches token lookups; a revocation made
 * through either must be refused by both from its answer on, whatever their caches hold.
 */
describe('token revocation across two API instances', () => {
  let stack: Stack;
  let urlB: string;
  let redis: Redis;
  let ds: DataSource;

  beforeAll(async () => {
    stack = await Stack.start(['api']);
    const portB = await freePort();
    stack.startService('api', 'api-2', { API_PORT: String(portB) });
    urlB = `http://127.0.0.1:${portB}`;
    await waitFor('the second API to be ready', async () => ((await fetch(`${urlB}/ready`).catch(() => undefined))?.ok ? true : undefined), 30000, 200);
    redis = new Redis(stack.world.env.REDIS_URL);
    ds = await new DataSource({ type: 'postgres', url: stack.world.databaseUrl }).initialize();
  }, 60000);
  afterAll(async () => {
    redis?.disconnect();
    await ds?.destroy();
    await stack?.stop();
  });

  const urlA = () => stack.baseUrl;
  const admin = () => ({ authorization: `Bearer ${stack.token}` });
  /** An authenticated read that answers 404 (unknown job) once the token is accepted, 401 when it is not. */
  const probe = async (url: string, token: string) =>
    (await fetch(`${url}/jobs/${randomUUID()}`, { headers: { authorization: `Bearer ${token}` } })).status;
  const newToken = async (tenant: string): Promise<{ id: string; token: string }> => {
    const res = await fetch(`${urlA()}/tokens`, { method: 'POST', headers: { ...admin(), 'content-type': 'application/json' }, body: JSON.stringify({ tenant, name: 'revocation' }) });
    expect(res.status).toBe(201);
    return (await res.json()) as { id: string; token: string };
  };
  const revoke = async (url: string, id: string) => (await fetch(`${url}/tokens/${id}`, { method: 'DELETE', headers: admin() })).status;
  const markKey = (id: string) => `${stack.world.redisPrefix}:token:{${id}}`;

  it('a revocation through either instance is refused at once by both, their caches warm', async () => {
    for (let i = 0; i < 20; i++) {
      const { id, token } = await newToken(`t${i}`);
      // Twice on each: the first looks it up in Postgres and marks it live, the second is served from the cache.
      for (const url of [urlA(), urlB, urlA(), urlB]) expect(await probe(url, token)).toBe(404);
      expect(await redis.get(markKey(id))).toBe('live');
      const [through, other] = i % 2 === 0 ? [urlA(), urlB] : [urlB, urlA()];
      expect(await revoke(through, id)).toBe(204);
      expect([i, await probe(other, token), await probe(through, token)]).toEqual([i, 401, 401]);
      expect(await redis.get(markKey(id))).toBe('revoked');
    }
  });

  it('while requests with the token keep arriving on the other instance, none sent after the answer is accepted', async () => {
    const { id, token } = await newToken('flood');
    expect(await probe(urlB, token)).toBe(404);
    const seen: { sentAt: number; status: number }[] = [];
    let revokedAt = Number.POSITIVE_INFINITY;
    let stop = false;
    const flood = Array.from({ length: 8 }, async () => {
      for (let n = 0; !stop && n < 5000; n++) {
        const sentAt = performance.now();
        seen.push({ sentAt, status: await probe(urlB, token) });
      }
    });
    await waitFor('requests on the second instance', async () => (seen.length >= 50 ? true : undefined), 10000, 10);
    expect(await revoke(urlA(), id)).toBe(204);
    revokedAt = performance.now();
    await waitFor('requests after the revocation', async () => (seen.filter((s) => s.sentAt > revokedAt).length >= 100 ? true : undefined), 10000, 10);
    stop = true;
    await Promise.all(flood);
    const before = seen.filter((s) => s.sentAt < revokedAt);
    const after = seen.filter((s) => s.sentAt > revokedAt);
    expect(before.some((s) => s.status === 404)).toBe(true);
    expect(after.filter((s) => s.status !== 401)).toEqual([]);
  });

  it('the mark in Redis is what lets a cached lookup stand: without it, Postgres decides', async () => {
    const { id, token } = await newToken('marks');
    for (const url of [urlA(), urlB, urlA(), urlB]) expect(await probe(url, token)).toBe(404);
    // Revoked in Postgres behind the API's back: the caches, marked live, still take it (they are in use)…
    await ds.query('UPDATE api_tokens SET revoked_at = now() WHERE id = $1', [id]);
    expect([await probe(urlA(), token), await probe(urlB, token)]).toEqual([404, 404]);
    // …until the mark is gone (Redis lost its data, or the mark expired): then both ask Postgres.
    await redis.del(markKey(id));
    expect([await probe(urlA(), token), await probe(urlB, token)]).toEqual([401, 401]);
    expect(await redis.get(markKey(id))).toBeNull();
  });

  it('a revoked token stays refused when Redis loses its mark, and a standing one keeps working', async () => {
    const gone = await newToken('lost-a');
    const kept = await newToken('lost-b');
    for (const url of [urlA(), urlB, urlA(), urlB]) {
      expect(await probe(url, gone.token)).toBe(404);
      expect(await probe(url, kept.token)).toBe(404);
    }
    expect(await revoke(urlB, gone.id)).toBe(204);
    await redis.del(markKey(gone.id), markKey(kept.id));
    for (const url of [urlA(), urlB, urlA(), urlB]) {
      expect(await probe(url, gone.token)).toBe(401);
      expect(await probe(url, kept.token)).toBe(404);
    }
    expect(await redis.get(markKey(kept.id))).toBe('live');
    expect(await redis.get(markKey(gone.id))).toBeNull();
  });
});
