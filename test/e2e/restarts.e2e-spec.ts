import { ensureDatabase } from '@flashpods/database';
import { tally } from '../support/chaos-report';
import { PrivatePostgres, PrivateRedis } from '../support/private-services';
import { storedNumbers } from '../support/log-audit';
import { Stack } from '../support/stack';
import { TEST_IMAGE, waitFor } from '../support/test-env';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const counter = (n: number) => ['sh', '-c', `i=1; while [ $i -le ${n} ]; do echo "line $i"; i=$((i+1)); sleep 0.01; done`];


describe('Redis and Postgres restarted under a running stack', () => {
  let redis: PrivateRedis;
  let pg: PrivatePostgres;
  let stack: Stack;

  beforeAll(async () => {
    redis = await PrivateRedis.start();
    pg = await PrivatePostgres.start();
    await ensureDatabase(pg.url);
    stack = await Stack.start(['api', 'runner', 'persister'], { REDIS_URL: redis.url, DATABASE_URL: pg.url });
  }, 90000);
  afterAll(async () => {
    await stack?.stop();
    await redis?.stop();
    await pg?.stop();
  });

  const run = async (command: string[]) => (await stack.json('POST', '/jobs', { image: TEST_IMAGE, command })).body;

  /** Submits a job as soon as the API takes it and waits for it; returns the time from `since`. */
  async function newJobRuns(since: number, what: string): Promise<number> {
    const after = await waitFor('the API to accept a job again', async () => {
      const r = await stack.json('POST', '/jobs', { image: TEST_IMAGE, command: ['echo', 'after'] });
      return r.status === 201 ? r.body : undefined;
    }, 30000, 200);
    const { job } = await stack.waitTerminal(after.id, 60000);
    const recoveredMs = Date.now() - since;
    console.log(`${what} restart: a new job completed ${recoveredMs} ms after it came back`);
    expect(job.status).toBe('completed');
    expect(recoveredMs).toBeLessThan(30000);
    return recoveredMs;
  }

  it('Redis restart: every service reconnects by itself, the running job loses nothing, new jobs run within seconds', async () => {
    const before = await run(['echo', 'before']);
    expect((await stack.waitTerminal(before.id)).job.status).toBe('completed');
    const long = await run(counter(500));
    await waitFor('the long job to run', async () => ((await stack.json('GET', `/jobs/${long.id}`)).body.log.lines > 20 ? true : undefined), 20000, 50);
    await redis.down();
    await sleep(2000);
    await redis.up();
    const recoveredMs = await newJobRuns(Date.now(), 'redis');
    expect((await stack.waitTerminal(long.id, 60000)).job.status).toBe('completed');
    const lines = await storedNumbers(stack, long.id);
    tally(`redis restart mid-job (new job done ${recoveredMs} ms after)`, lines, 500);
    expect(lines).toEqual(Array.from({ length: 500 }, (_, i) => i + 1));
  }, 120000);

  it('Postgres restart: 503 while it is down, then every service reconnects and the running job loses nothing', async () => {
    const long = await run(counter(400));
    await waitFor('the long job to run', async () => ((await stack.json('GET', `/jobs/${long.id}`)).body.log.lines > 20 ? true : undefined), 20000, 50);
    await pg.down();
    const down = await stack.json('GET', `/jobs/${long.id}`);
    expect([down.status, down.body.error]).toEqual([503, 'service_unavailable']);
    await sleep(2000);
    await pg.up();
    const recoveredMs = await newJobRuns(Date.now(), 'postgres');
    expect((await stack.waitTerminal(long.id, 60000)).job.status).toBe('completed');
    const lines = await storedNumbers(stack, long.id);
    tally(`postgres restart mid-job (new job done ${recoveredMs} ms after)`, lines, 400);
    expect(lines).toEqual(Array.from({ length: 400 }, (_, i) => i + 1));
  }, 120000);

  it('a claim that fails while Postgres is down is retried: the job runs once Postgres is back', async () => {
    await stack.stopService('runner', 'SIGTERM');
    const job = await run(['echo', 'claimed late']);
    await pg.down();
    stack.startService('runner');
    // The runner fetches the queue entry, cannot read or claim the row, and the entry goes back with a backoff.
    await waitFor('a failed claim attempt', async () => (/job run|ECONNREFUSED|Connection terminated|connect/i.test(stack.logsOf('runner')) ? true : undefined), 20000, 100).catch(() => undefined);
    await sleep(2000);
    await pg.up();
    const { job: done } = await stack.waitTerminal(job.id, 60000);
    expect(done.status).toBe('completed');
    const out = (await (await stack.request('GET', `/jobs/${job.id}/output`)).json()) as { output: string };
    expect(out.output.match(/\] claimed late\n/g)).toHaveLength(1);
    expect((out.output.match(/starting container/g) ?? []).length).toBe(1);
  }, 120000);
});
