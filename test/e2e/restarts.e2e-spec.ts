import { ensureDatabase } from '@flashpods/database';
import { Queue } from 'bullmq';
import Docker from 'dockerode';
import Redis from 'ioredis';
import { tally } from '../support/chaos-report';
import { gate, release } from '../support/gate';
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

  it('Redis killed with SIGKILL mid-job (AOF on): what it acknowledged was written out, the job loses nothing', async () => {
    const long = await run(counter(500));
    await waitFor('the long job to run', async () => ((await stack.json('GET', `/jobs/${long.id}`)).body.log.lines > 20 ? true : undefined), 20000, 50);
    await redis.kill();
    await sleep(1000);
    await redis.up();
    const recoveredMs = await newJobRuns(Date.now(), 'redis kill -9');
    expect((await stack.waitTerminal(long.id, 60000)).job.status).toBe('completed');
    const lines = await storedNumbers(stack, long.id);
    tally(`redis kill -9 mid-job (new job done ${recoveredMs} ms after)`, lines, 500);
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

  it('Postgres killed with SIGKILL mid-job: it recovers from the crash, every service reconnects, the job loses nothing', async () => {
    const long = await run(counter(400));
    await waitFor('the long job to run', async () => ((await stack.json('GET', `/jobs/${long.id}`)).body.log.lines > 20 ? true : undefined), 20000, 50);
    await pg.kill();
    const down = await stack.json('GET', `/jobs/${long.id}`);
    expect([down.status, down.body.error]).toEqual([503, 'service_unavailable']);
    await pg.up();
    const recoveredMs = await newJobRuns(Date.now(), 'postgres kill -9');
    expect((await stack.waitTerminal(long.id, 60000)).job.status).toBe('completed');
    const lines = await storedNumbers(stack, long.id);
    tally(`postgres kill -9 mid-job (new job done ${recoveredMs} ms after)`, lines, 400);
    expect(lines).toEqual(Array.from({ length: 400 }, (_, i) => i + 1));
  }, 120000);

  it('the container outlives its exit until the end is shipped: a runner killed between the two re-attaches and the job completes whole', async () => {
    // `last` and the exit wait at a gate until Redis is frozen.
    const job = await run(['sh', '-c', `echo first; ${gate()}; echo last; exit 0`]);
    await waitFor('the first line stored', async () => {
      const out = (await (await stack.request('GET', `/jobs/${job.id}/output`)).json()) as { output?: string };
      return out.output?.includes('] first\n') ? true : undefined;
    }, 20000, 50);
    // Redis frozen across the job's exit: the runner reads `last` and the exit code, but can ship
    // neither. It is killed in that window. Only the container still holds the end of the log.
    redis.freeze();
    try {
      await release(job.id);
      const docker = new Docker();
      await waitFor('the container to exit', async () => {
        const [c] = await docker.listContainers({ all: true, filters: { label: [`flashpods.job_id=${job.id}`] } });
        return c?.State === 'exited' ? true : undefined;
      }, 20000, 50);
      await sleep(300); // the runner reads the exit code meanwhile (and, before the fix, removed the container)
      await stack.stopService('runner', 'SIGKILL');
      expect((await docker.listContainers({ all: true, filters: { label: [`flashpods.job_id=${job.id}`] } })).map((c) => c.State)).toEqual(['exited']);
    } finally {
      redis.thaw();
    }
    stack.startService('runner');
    const { job: done } = await stack.waitTerminal(job.id, 30000);
    expect(done).toMatchObject({ status: 'completed', exit_code: 0 });
    const out = (await (await stack.request('GET', `/jobs/${job.id}/output`)).json()) as { output: string };
    expect(out.output.match(/\] (first|last)\n/g)).toEqual(['] first\n', '] last\n']);
  }, 90000);

  it('a claim that fails while Postgres is down is retried: the job runs once Postgres is back', async () => {
    // The runner is frozen while the job is submitted (so its queue entry is handed to the runner's
    // blocked fetch), and Postgres goes down before the runner thaws: its read and claim of the
    // row then fail for real, and the entry must come back with a backoff.
    const pid = stack.pidOf('runner')!;
    process.kill(pid, 'SIGSTOP');
    let job: { id: string };
    try {
      job = await run(['echo', 'claimed late']);
      await pg.down();
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    // A connection given to BullMQ is not closed by `queue.close()`: closed here, or it retries the
    // stopped Redis for ever after the file and jest never exits.
    const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
    const queue = new Queue('jobs', { connection, prefix: `${stack.world.redisPrefix}:bull` });
    try {
      const failed = await waitFor('a failed claim attempt, backed off', async () => {
        const entry = await queue.getJob(job.id);
        return entry && entry.attemptsMade >= 1 && (await entry.getState()) === 'delayed' ? entry : undefined;
      }, 20000, 100);
      expect(failed.failedReason).toMatch(/ECONNREFUSED|Connection terminated|connect|terminat/i);
      expect((await stack.json('GET', `/jobs/${job.id}`)).status).toBe(503);
    } finally {
      await queue.close();
      connection.disconnect();
    }
    await pg.up();
    const { job: done } = await stack.waitTerminal(job.id, 60000);
    expect(done.status).toBe('completed');
    const out = (await (await stack.request('GET', `/jobs/${job.id}/output`)).json()) as { output: string };
    expect(out.output.match(/\] claimed late\n/g)).toHaveLength(1);
    expect((out.output.match(/starting container/g) ?? []).length).toBe(1);
  }, 120000);
});
