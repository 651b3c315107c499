import { ensureDatabase } from '@flashpods/database';
import { PrivatePostgres, PrivateRedis } from '../support/private-services';
import { Stack } from '../support/stack';
import { TEST_IMAGE, waitFor } from '../support/test-env';

/**
 * A request must never wait with its client for a backing service to come back: with Redis or
 * Postgres stopped under a running API, every authenticated call answers 503 with Retry-After
 * within about two seconds, and works again once the service is back.
 */
describe('requests while Redis or Postgres is down (private servers, stopped for real)', () => {
  let redis: PrivateRedis;
  let pg: PrivatePostgres;
  let stack: Stack;
  let jobId: string;

  beforeAll(async () => {
    redis = await PrivateRedis.start();
    pg = await PrivatePostgres.start();
    await ensureDatabase(pg.url);
    stack = await Stack.start(['api'], { REDIS_URL: redis.url, DATABASE_URL: pg.url });
    jobId = (await stack.json('POST', '/jobs', { image: TEST_IMAGE, command: ['true'] })).body.id;
  }, 90000);
  afterAll(async () => {
    await stack?.stop();
    await redis?.stop();
    await pg?.stop();
  });

  const calls = (): [string, string, unknown?][] => [
    ['GET', '/jobs'],
    ['GET', `/jobs/${jobId}`],
    ['POST', '/jobs', { image: TEST_IMAGE, command: ['true'] }],
    ['GET', `/jobs/${jobId}/output`],
  ];

  async function expectUnavailable(what: string): Promise<void> {
    for (const [method, path, body] of calls()) {
      const started = Date.now();
      const res = await stack.request(method, path, body, {}).catch((err: Error) => err);
      const took = Date.now() - started;
      if (res instanceof Error) throw new Error(`${what}: ${method} ${path} failed: ${res.message}`);
      const text = await res.text();
      expect([what, method, path, res.status, res.headers.get('retry-after') !== null, took < 2500]).toEqual([what, method, path, 503, true, true]);
      expect(JSON.parse(text).error).toBe('service_unavailable');
    }
    const ready = await fetch(`${stack.baseUrl}/ready`);
    expect(ready.status).toBe(503);
    // Which service is down, and nothing of why (hosts, ports, driver errors).
    expect(JSON.stringify(await ready.json())).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|connect|Stream|writeable|terminat/i);
  }

  async function expectBack(): Promise<void> {
    await waitFor('the API to answer again', async () => ((await stack.request('GET', '/jobs')).status === 200 ? true : undefined), 20000, 200);
    for (const [method, path, body] of calls()) {
      const res = await stack.request(method, path, body);
      expect([method, path, res.status]).toEqual([method, path, method === 'POST' ? 201 : path.endsWith('/output') ? 404 : 200]);
    }
  }

  it('Redis down: 503 + Retry-After within 2 s on every call, no job left behind, then back to normal', async () => {
    const before = (await stack.json('GET', '/jobs?limit=200')).body.jobs.length;
    await redis.down();
    try {
      await expectUnavailable('redis down');
    } finally {
      await redis.up();
    }
    await expectBack();
    // The refused POST left no pending job behind (expectBack submitted one more).
    expect((await stack.json('GET', '/jobs?limit=200')).body.jobs.length).toBe(before + 1);
  }, 60000);

  it('Postgres down: 503 + Retry-After within 2 s on every call, then back to normal', async () => {
    await pg.down();
    try {
      await expectUnavailable('postgres down');
    } finally {
      await pg.up();
    }
    await expectBack();
  }, 60000);
});
