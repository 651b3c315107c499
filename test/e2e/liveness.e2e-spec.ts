import Docker from 'dockerode';
import Redis from 'ioredis';
import { Queue, Worker } from 'bullmq';
import { createDataSource } from '@flashpods/database';
import { symlink, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { PrivateRedis } from '../support/private-services';
import { Stack } from '../support/stack';
import { TEST_IMAGE, waitFor } from '../support/test-env';

/**
 * Every job reaches a terminal state, whatever dies: a container removed under its job, a runner
 * that restarts without its containers or never comes back, a queue entry that vanished, a cancel
 * whose message was lost, Redis out of memory or away.
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const docker = new Docker();
const containersOf = (jobId: string) => docker.listContainers({ all: true, filters: { label: [`flashpods.job_id=${jobId}`] } });
const waitStatus = (stack: Stack, id: string, statuses: string[], ms = 20000) =>
  waitFor(`job ${id} to be ${statuses.join('|')}`, async () => {
    const { body } = await stack.json('GET', `/jobs/${id}`);
    return statuses.includes(body.status) ? body : undefined;
  }, ms, 50);

describe('process executor: quick commands', () => {
  let stack: Stack;
  beforeAll(async () => (stack = await Stack.start(['api', 'runner', 'persister'], { RUNNER_EXECUTOR: 'process', RUNNER_CONCURRENCY: '8' })), 60000);
  afterAll(() => stack?.stop());

  it('200 jobs that exit at once (`true`, `echo hi`) all complete, with their output', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 200; i++) {
      const command = i % 2 === 0 ? ['true'] : ['echo', `hi ${i}`];
      const { status, body } = await stack.json('POST', '/jobs', { image: 'none', command });
      expect(status).toBe(201);
      ids.push(body.id);
    }
    const done = await Promise.all(ids.map((id) => stack.waitTerminal(id, 120000)));
    expect(done.map((d) => d.job.status).filter((s) => s !== 'completed')).toEqual([]);
    for (const i of [1, 77, 199]) {
      const out = (await (await stack.request('GET', `/jobs/${ids[i]}/output`)).json()) as { output: string };
      expect(out.output).toMatch(new RegExp(`\\] hi ${i}\\n`));
    }
  }, 180000);
});

describe('a runner that loses its workloads, or dies for good', () => {
  let stack: Stack;
  beforeAll(
    async () =>
      (stack = await Stack.start(['api', 'runner', 'persister', 'janitor'], {
        RUNNER_HEARTBEAT_SECONDS: '1',
        LIVENESS_INTERVAL_SECONDS: '1',
        LIVENESS_TIMEOUT_GRACE_SECONDS: '2',
        LIVENESS_PENDING_GRACE_SECONDS: '1',
      })),
    60000,
  );
  afterAll(() => stack?.stop());

  it('`docker rm -f` on a running job\'s container: the job ends within 10 s, with the lines it wrote', async () => {
    const job = (await stack.json('POST', '/jobs', { image: TEST_IMAGE, command: ['sh', '-c', 'echo before; sleep 120'] })).body;
    await waitStatus(stack, job.id, ['running']);
    await waitFor('the first line', async () => ((await stack.json('GET', `/jobs/${job.id}`)).body.log.lines >= 4 ? true : undefined));
    const [c] = await containersOf(job.id);
    const removedAt = Date.now();
    await docker.getContainer(c.Id).remove({ force: true });
    const { job: done } = await stack.waitTerminal(job.id, 10000);
    expect(Date.now() - removedAt).toBeLessThan(10000);
    expect(done.status).toBe('failed');
    // `rm -f` SIGKILLs the container, then removes it: wait() answers 137 before the removal, and
    // the inspect after it finds the container or not, by a race inside Docker. Either is the truth.
    if (done.error.code === 'nonzero_exit') expect(done.exit_code).toBe(137);
    else expect(done.error).toEqual({ code: 'runner_error', message: 'the container was removed while the job ran' });
    const out = (await (await stack.request('GET', `/jobs/${job.id}/output`)).json()) as { output: string };
    expect(out.output).toMatch(/\] before\n/);
  }, 30000);

  it('runner restarted while its container was removed: the job ends runner_lost at once', async () => {
    const job = (await stack.json('POST', '/jobs', { image: TEST_IMAGE, command: ['sh', '-c', 'echo hello; sleep 120'] })).body;
    await waitStatus(stack, job.id, ['running']);
    await stack.stopService('runner', 'SIGKILL');
    for (const c of await containersOf(job.id)) await docker.getContainer(c.Id).remove({ force: true });
    const restartedAt = Date.now();
    stack.startService('runner');
    const { job: done } = await stack.waitTerminal(job.id, 15000);
    expect(done).toMatchObject({ status: 'failed', error: { code: 'runner_lost' } });
    expect(done.error.message).toMatch(/restarted and found no container/);
    // "At once": on start, well before the heartbeat-based detection could have fired (window 3 s + suspicion 4 s).
    expect(Date.now() - restartedAt).toBeLessThan(6000);
  }, 30000);

  it('a cancel whose message was lost (flag set, nothing published) still stops the job on the next heartbeat', async () => {
    const job = (await stack.json('POST', '/jobs', { image: TEST_IMAGE, command: ['sh', '-c', 'echo up; sleep 120'] })).body;
    await waitStatus(stack, job.id, ['running']);
    const redis = new Redis(stack.world.env.REDIS_URL);
    try {
      await redis.set(`${stack.world.redisPrefix}:cancel:{${job.id}}`, '1', 'EX', 60);
    } finally {
      redis.disconnect();
    }
    const { job: done } = await stack.waitTerminal(job.id, 5000);
    expect(done.status).toBe('cancelled');
  }, 20000);

  it('a pending job whose queue entry was removed from Redis runs within one liveness interval', async () => {
    await stack.stopService('runner', 'SIGTERM');
    const job = (await stack.json('POST', '/jobs', { image: TEST_IMAGE, command: ['echo', 'requeued'] })).body;
    const queue = new Queue('jobs', { connection: new Redis(stack.world.env.REDIS_URL, { maxRetriesPerRequest: null }), prefix: `${stack.world.redisPrefix}:bull` });
    try {
      expect(await queue.getJobState(job.id)).toBe('waiting');
      await sleep(1500); // older than LIVENESS_PENDING_GRACE_SECONDS, so the sweep may act on it
      expect(await queue.remove(job.id)).toBe(1);
      expect(await queue.getJobState(job.id)).toBe('unknown');
      await waitFor('the sweep to enqueue it again', async () => ((await queue.getJobState(job.id)) === 'waiting' ? true : undefined), 3000, 50);
    } finally {
      await queue.close();
    }
    stack.startService('runner');
    const { job: done } = await stack.waitTerminal(job.id, 20000);
    expect(done.status).toBe('completed');
    const out = (await (await stack.request('GET', `/jobs/${job.id}/output`)).json()) as { output: string };
    expect(out.output.match(/\] requeued\n/g)).toHaveLength(1);
  }, 40000);

  it('a pending job whose queue entry ran out of attempts (failed in BullMQ) is enqueued again and runs', async () => {
    await stack.stopService('runner', 'SIGTERM');
    const job = (await stack.json('POST', '/jobs', { image: TEST_IMAGE, command: ['echo', 'second life'] })).body;
    const connection = new Redis(stack.world.env.REDIS_URL, { maxRetriesPerRequest: null });
    const prefix = `${stack.world.redisPrefix}:bull`;
    const queue = new Queue('jobs', { connection, prefix });
    try {
      // What a Postgres outage longer than every retry leaves: the entry failed for good, the row pending.
      expect(await queue.remove(job.id)).toBe(1);
      await queue.add('run-job', { jobId: job.id }, { jobId: job.id, attempts: 1 });
      const failing = new Worker('jobs', async () => {
        throw new Error('postgres unreachable (simulated by this test worker)');
      }, { connection: connection.duplicate(), prefix, autorun: true });
      try {
        await waitFor('the entry to fail for good', async () => ((await queue.getJobState(job.id)) === 'failed' ? true : undefined), 10000, 50);
      } finally {
        await failing.close();
      }
      expect((await stack.json('GET', `/jobs/${job.id}`)).body.status).toBe('pending');
      await waitFor('the sweep to enqueue it again', async () => ((await queue.getJobState(job.id)) === 'waiting' ? true : undefined), 5000, 50);
    } finally {
      await queue.close();
      connection.disconnect();
    }
    stack.startService('runner');
    const { job: done } = await stack.waitTerminal(job.id, 20000);
    expect(done.status).toBe('completed');
    const out = (await (await stack.request('GET', `/jobs/${job.id}/output`)).json()) as { output: string };
    expect(out.output.match(/\] second life\n/g)).toHaveLength(1);
  }, 40000);

  it('a requeued job whose secret values are gone fails runner_error: it never runs without the secrets it was given', async () => {
    await stack.stopService('runner', 'SIGTERM');
    const job = (await stack.json('POST', '/jobs', {
      image: TEST_IMAGE, command: ['sh', '-c', 'echo "token=[$TOKEN]"'], secrets: { TOKEN: 'gone-secret-value-8842' },
    })).body;
    const redis = new Redis(stack.world.env.REDIS_URL);
    try {
      // What an API that died between storing the row and the secrets (before they moved first), or
      // a Redis that lost its data, leaves behind.
      expect(await redis.del(`${stack.world.redisPrefix}:secrets:{${job.id}}`)).toBe(1);
    } finally {
      redis.disconnect();
    }
    stack.startService('runner');
    const { job: done } = await stack.waitTerminal(job.id, 20000);
    expect(done).toMatchObject({ status: 'failed', exit_code: null, error: { code: 'runner_error' } });
    expect(done.error.message).toMatch(/secrets TOKEN are gone/);
    const out = (await (await stack.request('GET', `/jobs/${job.id}/output`)).json()) as { output: string };
    expect(out.output).not.toMatch(/token=/);
    expect(await containersOf(job.id)).toEqual([]);
  }, 40000);

  it('a runner stuck (SIGSTOP) past its job\'s timeout: the janitor ends the job timed_out; resumed, it is fenced off and its container killed', async () => {
    const job = (await stack.json('POST', '/jobs', {
      image: TEST_IMAGE, command: ['sh', '-c', 'i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 0.1; done'], timeout_seconds: 3,
    })).body;
    const running = await waitStatus(stack, job.id, ['running']);
    const pid = stack.pidOf('runner')!;
    process.kill(pid, 'SIGSTOP');
    let stoppedFor: number;
    try {
      // Timeout 3 s + grace 2 s: the janitor, not the frozen runner, must end it, and before the
      // runner could be declared lost (3 s of heartbeat TTL + 4 s of suspicion).
      const { job: done } = await stack.waitTerminal(job.id, 15000);
      expect(done).toMatchObject({ status: 'timed_out', error: null });
      const endedMs = new Date(done.finished_at).getTime() - new Date(running.running_at).getTime();
      expect(endedMs).toBeGreaterThanOrEqual(5000);
      expect(endedMs).toBeLessThan(5000 + 2 * 1000 + 1500);
      stoppedFor = Date.now();
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    // Resumed, the runner finds its job ended elsewhere: nothing more of it lands, the container goes.
    await waitFor('the stuck runner\'s container to go', async () => ((await containersOf(job.id)).length === 0 ? true : undefined), 15000, 200);
    expect(Date.now() - stoppedFor).toBeLessThan(15000);
    const text = await (await stack.request('GET', `/jobs/${job.id}/logs/download`)).text();
    const lines = text.trimEnd().split('\n');
    expect(lines[lines.length - 1]).toMatch(/killed: timeout of 3 s exceeded \(.*ended by the janitor\)$/);
    expect(lines.filter((l) => /killed: /.test(l))).toHaveLength(1);
    expect(stack.logsOf('runner')).toMatch(/taken over/);
    // And the runner goes on: the next job runs on it.
    const next = (await stack.json('POST', '/jobs', { image: TEST_IMAGE, command: ['echo', 'after the stall'] })).body;
    expect((await stack.waitTerminal(next.id, 20000)).job.status).toBe('completed');
  }, 60000);

  it('a runner whose engine does not answer at start retries re-attaching, takes no job meanwhile, then runs them', async () => {
    await stack.stopService('runner', 'SIGTERM');
    const socket = join(stack.world.logDir, '..', `fp-docker-${stack.world.id}.sock`);
    stack.startService('runner', 'runner', { DOCKER_HOST: `unix://${socket}` });
    try {
      const job = (await stack.json('POST', '/jobs', { image: TEST_IMAGE, command: ['echo', 'engine back'] })).body;
      await waitFor('two failed attempts', async () => ((stack.logsOf('runner').match(/re-attaching failed/g) ?? []).length >= 2 ? true : undefined), 15000, 100);
      expect((await stack.json('GET', `/jobs/${job.id}`)).body.status).toBe('pending');
      await symlink('/var/run/docker.sock', socket);
      const { job: done } = await stack.waitTerminal(job.id, 30000);
      expect(done.status).toBe('completed');
      expect(done.runner_id).toBe(`runner-${stack.world.id}`);
    } finally {
      await stack.stopService('runner', 'SIGTERM');
      await unlink(socket).catch(() => undefined);
      stack.startService('runner');
    }
  }, 60000);

  it('the only runner killed for good: its job ends runner_lost within three heartbeat windows; a job with a 5 s timeout by 5 s + one window', async () => {
    const long = (await stack.json('POST', '/jobs', { image: TEST_IMAGE, command: ['sh', '-c', 'echo working; sleep 120'] })).body;
    const short = (await stack.json('POST', '/jobs', { image: TEST_IMAGE, command: ['sh', '-c', 'sleep 120'], timeout_seconds: 5 })).body;
    await waitStatus(stack, long.id, ['running']);
    // Killed only once `working` is stored: a line still in the runner's chunk (up to STREAM_CHUNK_MAX_DELAY_MS) dies with it
    // (the job then says why: runner_lost), and the test asserts the line is kept.
    await waitFor('the first line stored', async () => {
      const out = (await (await stack.request('GET', `/jobs/${long.id}/output`)).json()) as { output?: string };
      return out.output?.includes('] working\n') ? true : undefined;
    }, 20000, 50);
    const shortRunning = await waitStatus(stack, short.id, ['running']);
    const killedAt = Date.now();
    await stack.stopService('runner', 'SIGKILL');
    const [lost, timed] = await Promise.all([stack.waitTerminal(long.id, 15000), stack.waitTerminal(short.id, 15000)]);
    const lostAfter = Date.now() - killedAt;
    expect(lost.job).toMatchObject({ status: 'failed', error: { code: 'runner_lost' } });
    expect(lostAfter).toBeLessThan(3 * 3000 + 1000);
    // The short job ended one way or the other (whichever sweep saw it first), within 5 s + one window of its start.
    expect(['failed', 'timed_out']).toContain(timed.job.status);
    const endedMs = new Date(timed.job.finished_at).getTime() - new Date(shortRunning.running_at ?? shortRunning.started_at).getTime();
    expect(endedMs).toBeLessThan(5000 + 3000 + 1000);
    const out = (await (await stack.request('GET', `/jobs/${long.id}/output`)).json()) as { output: string };
    expect(out.output).toMatch(/\] working\n.*failed: runner_lost/s);
    // Nobody runs on that engine any more: a new runner with another id sweeps the leftovers away.
    stack.startService('runner', 'runner-sweeper');
    await waitFor('the dead runner\'s containers to be swept', async () =>
      (await containersOf(long.id)).length + (await containersOf(short.id)).length === 0 ? true : undefined, 20000, 200);
    await stack.stopService('runner-sweeper');
    stack.startService('runner');
  }, 60000);
});

describe('Redis refusing writes, or away', () => {
  let redis: PrivateRedis;
  let stack: Stack;
  beforeAll(async () => {
    redis = await PrivateRedis.start();
    stack = await Stack.start(['api', 'runner', 'persister', 'janitor'], {
      REDIS_URL: redis.url,
      RUNNER_HEARTBEAT_SECONDS: '1',
      LIVENESS_INTERVAL_SECONDS: '1',
      RUNNER_CONCURRENCY: '2',
    });
  }, 60000);
  afterAll(async () => {
    await stack?.stop();
    await redis?.stop();
  });

  it('Redis out of memory mid-job: that job fails runner_error, the runner lives and runs the next job', async () => {
    const admin = new Redis(redis.url);
    try {
      const job = (await stack.json('POST', '/jobs', {
        image: TEST_IMAGE,
        command: ['sh', '-c', 'i=0; while true; do echo "line $i $i $i $i $i $i $i $i"; i=$((i+1)); done'],
      })).body;
      await waitFor('lines to flow', async () => ((await stack.json('GET', `/jobs/${job.id}`)).body.log.lines > 1000 ? true : undefined), 20000, 50);
      await admin.config('SET', 'maxmemory', '1mb');
      // The API needs Redis for every request (rate limit), so while Redis refuses writes the job is read from Postgres.
      const pg = await createDataSource(stack.world.databaseUrl).initialize();
      try {
        const row = await waitFor('the job to end', async () => {
          const [r] = await pg.query('SELECT status, error_code, error_message FROM jobs WHERE id = $1', [job.id]);
          return ['failed', 'completed', 'timed_out', 'cancelled'].includes(r.status) ? r : undefined;
        }, 30000, 100);
        expect(row).toMatchObject({ status: 'failed', error_code: 'runner_error' });
        expect(row.error_message).toMatch(/OOM/);
      } finally {
        await pg.destroy();
      }
      await admin.config('SET', 'maxmemory', '0');
      const done = (await stack.waitTerminal(job.id, 30000)).job;
      expect(done).toMatchObject({ status: 'failed', error: { code: 'runner_error' } });
      const next = (await stack.json('POST', '/jobs', { image: TEST_IMAGE, command: ['echo', 'after'] })).body;
      expect((await stack.waitTerminal(next.id, 30000)).job.status).toBe('completed');
      expect(stack.logsOf('runner')).not.toMatch(/exited early/);
      expect((await containersOf(job.id)).length).toBe(0);
    } finally {
      await admin.config('SET', 'maxmemory', '0').catch(() => undefined);
      admin.disconnect();
    }
  }, 90000);

  /** 12 s (4 heartbeat windows) in `npm test`, 30 s in `npm run chaos`. */
  const OUTAGE_S = Number(process.env.REDIS_OUTAGE_SECONDS ?? 12);
  it(`Redis stopped ${OUTAGE_S} s under two busy runners: no job is declared lost, all complete with every line`, async () => {
    stack.startService('runner', 'runner-2');
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      ids.push((await stack.json('POST', '/jobs', { image: TEST_IMAGE, command: ['sh', '-c', 'i=1; while [ $i -le 200 ]; do echo "line $i"; i=$((i+1)); sleep 0.1; done'] })).body.id);
    }
    for (const id of ids) await waitStatus(stack, id, ['running']);
    await redis.down();
    await sleep(OUTAGE_S * 1000);
    await redis.up();
    const done = await Promise.all(ids.map((id) => stack.waitTerminal(id, 60000 + OUTAGE_S * 1000)));
    expect(done.map((d) => d.job.status)).toEqual(['completed', 'completed', 'completed', 'completed']);
    for (const id of ids) {
      const text = await (await stack.request('GET', `/jobs/${id}/logs/download`)).text();
      const nums = [...text.matchAll(/\] line (\d+)\n/g)].map((m) => Number(m[1]));
      expect(nums).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    }
    await stack.stopService('runner-2');
  }, 120000 + 2 * OUTAGE_S * 1000);

  it('Redis frozen 8 s (DEBUG SLEEP: every heartbeat key expires meanwhile): no job is declared lost', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      ids.push((await stack.json('POST', '/jobs', { image: TEST_IMAGE, command: ['sh', '-c', 'i=1; while [ $i -le 100 ]; do echo "line $i"; i=$((i+1)); sleep 0.1; done'] })).body.id);
    }
    for (const id of ids) await waitStatus(stack, id, ['running']);
    const admin = new Redis(redis.url);
    try {
      await admin.call('DEBUG', 'SLEEP', '8');
    } finally {
      admin.disconnect();
    }
    const done = await Promise.all(ids.map((id) => stack.waitTerminal(id, 60000)));
    expect(done.map((d) => d.job.status)).toEqual(['completed', 'completed']);
  }, 90000);
});
