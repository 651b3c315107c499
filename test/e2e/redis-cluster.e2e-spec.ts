import { redisKeys } from '@flashpods/contracts';
import { Cluster } from 'ioredis';
import { storedNumbers } from '../support/log-audit';
import { LocalRedisCluster } from '../support/redis-cluster';
import { readEvents } from '../support/sse';
import { freePort, Stack } from '../support/stack';
import { TEST_IMAGE, waitFor } from '../support/test-env';

/**
 * The whole system on a real Redis Cluster: three masters with a replica each, on this machine
 * (test/support/redis-cluster.ts). Two APIs, two runners, two persisters and a janitor, all with
 * REDIS_CLUSTER_NODES. Jobs' log streams land on different shards by their `{jobId}` hash tag;
 * BullMQ's keys share the `{prefix}` one. A replica promoted while jobs run loses no line.
 */

/** `line 1` … `line n`, pausing `pause` seconds every `every` lines so the job runs a while. */
const numberedJob = (n: number, every: number, pause: string) => [
  'sh',
  '-c',
  `i=1; while [ $i -le ${n} ]; do echo "line $i"; if [ $((i % ${every})) -eq 0 ]; then sleep ${pause}; fi; i=$((i+1)); done`,
];

function expectOneToN(id: string, numbers: number[], n: number): void {
  const seen = new Set<number>();
  const dupes = numbers.filter((v) => (seen.has(v) ? true : (seen.add(v), false))).length;
  let missing = 0;
  for (let i = 1; i <= n; i++) if (!seen.has(i)) missing++;
  expect({ id, count: numbers.length, dupes, missing, ordered: numbers.every((v, i) => i === 0 || v > numbers[i - 1]) }).toEqual({
    id,
    count: n,
    dupes: 0,
    missing: 0,
    ordered: true,
  });
}

describe('on a Redis Cluster (3 masters + 3 replicas): 2 APIs, 2 runners, 2 persisters, a janitor', () => {
  let cluster: LocalRedisCluster;
  let stack: Stack;
  let api2: string;
  let redis: Cluster;

  /** A call through the second API, with the same admin token. */
  const viaApi2 = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${api2}${path}`, {
      method,
      headers: { authorization: `Bearer ${stack.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };
  const submit = async (command: string[], api: 1 | 2 = 1): Promise<string> => {
    const { status, body } = api === 1 ? await stack.json('POST', '/jobs', { image: TEST_IMAGE, command }) : await viaApi2('POST', '/jobs', { image: TEST_IMAGE, command });
    expect(status).toBe(201);
    return body.id;
  };
  const jobOf = async (id: string) => (await stack.json('GET', `/jobs/${id}`)).body;
  const keys = () => redisKeys(stack.world.redisPrefix, { cluster: true });

  beforeAll(async () => {
    cluster = await LocalRedisCluster.ensure();
    const port2 = await freePort();
    api2 = `http://127.0.0.1:${port2}`;
    stack = await Stack.start(['api', 'runner', 'persister', 'janitor'], {
      REDIS_CLUSTER_NODES: cluster.nodesEnv,
      // Nothing may reach the single Redis: a service that did would find an empty world there.
      REDIS_URL: 'redis://127.0.0.1:1',
      RUNNER_HEARTBEAT_SECONDS: '2',
      LIVENESS_INTERVAL_SECONDS: '1',
      PERSISTER_CLAIM_IDLE_MS: '3000',
      JANITOR_INTERVAL_SECONDS: '2',
    });
    stack.startService('runner', 'runner-2');
    stack.startService('persister', 'persister-2');
    stack.startService('api', 'api-2', { API_PORT: String(port2) });
    await waitFor('the second API', async () => ((await fetch(`${api2}/ready`).catch(() => undefined))?.ok ? true : undefined), 30000, 200);
    redis = new Cluster(cluster.ports.map((port) => ({ host: '127.0.0.1', port })));
  }, 90000);

  afterAll(async () => {
    redis?.disconnect();
    await stack?.stop();
    await cluster?.stop();
  }, 60000);

  it('runs jobs from both APIs on both runners, through both persisters: every line once and in order, streams on several shards', async () => {
    const N = 2000;
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) ids.push(await submit(numberedJob(N, 250, '0.2'), i % 2 === 0 ? 1 : 2));
    // Where each job's stream lives, seen on the masters themselves while the jobs run.
    const shards = new Set<number>();
    await waitFor('every job to have started shipping', async () => {
      for (const id of ids) {
        const master = await cluster.masterOf(keys().jobLog(id));
        const node = cluster.node(master.port);
        try {
          if (await node.exists(keys().jobLog(id))) shards.add(master.port);
        } finally {
          node.disconnect();
        }
      }
      const jobs = await Promise.all(ids.map(jobOf));
      return jobs.every((j) => j.status !== 'pending') ? true : undefined;
    }, 60000, 200);
    const done = await Promise.all(ids.map((id) => stack.waitTerminal(id, 90000)));
    expect(done.map((d) => d.job.status)).toEqual(ids.map(() => 'completed'));
    for (const id of ids) expectOneToN(id, await storedNumbers(stack, id), N);
    // Both APIs read the same log directory and answer the same.
    const last = done[1].job.log.lines;
    const viaOne = await stack.json('GET', `/jobs/${ids[1]}/logs?after_seq=${last - 5}&limit=20`);
    const viaTwo = await viaApi2('GET', `/jobs/${ids[1]}/logs?after_seq=${last - 5}&limit=20`);
    expect(viaTwo).toEqual(viaOne);
    expect(viaTwo.body.logs.map((l: { line: string }) => l.line)).toEqual(['line 1997', 'line 1998', 'line 1999', 'line 2000', 'exited with code 0']);

    const runners = new Set(done.map((d) => d.job.runner_id));
    console.log(`cluster: 8 jobs on runners ${[...runners].join(', ')}; streams seen on masters ${[...shards].join(', ')}`);
    expect(runners.size).toBe(2);
    expect(shards.size).toBeGreaterThan(1);
    for (const p of ['persister', 'persister-2']) expect(stack.logsOf(p)).toMatch(/took job/);
    // BullMQ's keys all live in the one slot of the `{prefix}` hash tag.
    const bullKeys: string[] = [];
    for (const node of redis.nodes('master')) {
      bullKeys.push(...(await node.keys(`${keys().bullPrefix}:*`)));
    }
    expect(bullKeys.length).toBeGreaterThan(0);
    const slots = new Set(await Promise.all(bullKeys.slice(0, 20).map((k) => cluster.slotOf(k))));
    expect(slots.size).toBe(1);
  }, 150000);

  it('Bull Board and /metrics read the queues on the cluster', async () => {
    const basic = `Basic ${Buffer.from(`admin:${stack.token}`).toString('base64')}`;
    const page = await waitFor('completed entries on Bull Board', async () => {
      const res = await fetch(`${api2}/admin/queues/api/queues?activeQueue=jobs&status=completed`, { headers: { authorization: basic } });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { queues: { name: string; counts: Record<string, number> }[] };
      return (body.queues.find((q) => q.name === 'jobs')?.counts.completed ?? 0) > 0 ? body : undefined;
    }, 20000, 200);
    expect(page.queues.map((q) => q.name)).toEqual(expect.arrayContaining(['jobs', 'janitor']));
    const metrics = await (await fetch(`${stack.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/flashpods_queue_jobs\{state="completed"\} [1-9]/);
  }, 30000);

  it('streams a running job over SSE from the second API, every line once, then `end`', async () => {
    const N = 600;
    const id = await submit(numberedJob(N, 100, '0.3'));
    const events = await readEvents(`${api2}/jobs/${id}/logs/stream`, { authorization: `Bearer ${stack.token}` }, (e) => e.event === 'end', 60000);
    const lines = events.filter((e) => e.event === 'line').map((e) => JSON.parse(e.data) as { seq: number; line: string });
    const numbered = lines.map((l) => /^line (\d+)$/.exec(l.line)).filter((m): m is RegExpExecArray => m !== null).map((m) => Number(m[1]));
    expectOneToN(id, numbered, N);
    expect(lines.map((l) => l.seq)).toEqual(lines.map((_, i) => i + 1));
    expect(events[events.length - 1].event).toBe('end');
    expect(JSON.parse(events[events.length - 1].data).status).toBe('completed');
  }, 90000);

  it('cancels a running job from the second API', async () => {
    const id = await submit(['sh', '-c', 'echo started; sleep 120']);
    await waitFor('the job to run', async () => ((await jobOf(id)).status === 'running' ? true : undefined), 30000, 100);
    const cancelledAt = Date.now();
    expect((await viaApi2('POST', `/jobs/${id}/cancel`)).status).toBe(202);
    const { job } = await stack.waitTerminal(id, 20000);
    expect(job.status).toBe('cancelled');
    expect(Date.now() - cancelledAt).toBeLessThan(10000);
  }, 60000);

  it('a replica promoted (CLUSTER FAILOVER) under the shard of a running job\'s stream, while jobs run: no line lost or doubled', async () => {
    const N = 4000;
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(await submit(numberedJob(N, 200, '0.2'), i % 2 === 0 ? 1 : 2));
    const [watched] = ids;
    await waitFor('500 lines of the watched job stored', async () => ((await jobOf(watched)).log.lines >= 500 ? true : undefined), 60000, 100);
    const before = await jobOf(watched);
    const { from, to } = await cluster.failoverShardOf(keys().jobLog(watched));
    const after = await jobOf(watched);
    console.log(`failover: ${from.port} -> ${to.port} with the watched job at ${before.log.lines} lines (${after.log.lines} once healthy)`);
    expect(before.status).toBe('running');
    expect((await cluster.masterOf(keys().jobLog(watched))).port).toBe(to.port);

    const done = await Promise.all(ids.map((id) => stack.waitTerminal(id, 90000)));
    expect(done.map((d) => d.job.status)).toEqual(ids.map(() => 'completed'));
    expect((await jobOf(watched)).log.lines).toBeGreaterThan(before.log.lines);
    for (const id of ids) expectOneToN(id, await storedNumbers(stack, id), N);
    // And the system goes on: a job submitted after the failover runs as usual.
    const next = await submit(numberedJob(50, 50, '0'), 2);
    expect((await stack.waitTerminal(next, 30000)).job.status).toBe('completed');
    expectOneToN(next, await storedNumbers(stack, next), 50);
  }, 150000);

  it("the janitor's orphan sweep finds stale streams on every master", async () => {
    const orphans = ['0', '1', '2', '3', '4', '5', '6', '7', '8'].map((d) => `${d}0000000-0000-4000-8000-00000000000${d}`);
    for (const id of orphans) await redis.xadd(keys().jobLog(id), '*', 'type', 'lines');
    const masters = new Set(await Promise.all(orphans.map(async (id) => (await cluster.masterOf(keys().jobLog(id))).port)));
    expect(masters.size).toBe(3);
    await waitFor('every orphan stream to be removed', async () => {
      const left = await Promise.all(orphans.map((id) => redis.exists(keys().jobLog(id))));
      return left.every((n) => n === 0) ? true : undefined;
    }, 20000, 200);
  }, 30000);

  it('a service refuses to start when one master of the cluster may evict keys, naming it', async () => {
    const master = (await cluster.nodes()).find((n) => n.role === 'master')!;
    const node = cluster.node(master.port);
    try {
      await node.config('SET', 'maxmemory-policy', 'allkeys-lru');
      const proc = stack.startService('persister', 'persister-on-evicting-cluster');
      const code = await new Promise<number | null>((resolve) => proc.once('exit', (c) => resolve(c)));
      expect(code).toBe(2);
      expect(stack.logsOf('persister-on-evicting-cluster')).toContain(
        `maxmemory-policy is "allkeys-lru" on cluster node 127.0.0.1:${master.port}; Flashpods requires "noeviction"`,
      );
    } finally {
      await node.config('SET', 'maxmemory-policy', 'noeviction');
      node.disconnect();
    }
  }, 30000);

  it('a runner killed with SIGKILL: its running job ends runner_lost through the janitor', async () => {
    const id = await submit(['sh', '-c', 'echo working; sleep 120']);
    const running = await waitFor('the job to run', async () => {
      const j = await jobOf(id);
      return j.status === 'running' ? j : undefined;
    }, 30000, 100);
    const name = running.runner_id.startsWith('runner-2-') ? 'runner-2' : 'runner';
    const killedAt = Date.now();
    await stack.stopService(name, 'SIGKILL');
    const { job } = await stack.waitTerminal(id, 30000);
    const tookMs = Date.now() - killedAt;
    console.log(`runner_lost ${tookMs} ms after ${name} was killed (heartbeat 2 s)`);
    expect(job).toMatchObject({ status: 'failed', error: { code: 'runner_lost' } });
    // Three beats of TTL, two more beats and 2 s of suspicion, and a sweep interval.
    expect(tookMs).toBeLessThan(3 * 2000 + 2 * 2000 + 2000 + 4000);
    const out = (await (await stack.request('GET', `/jobs/${id}/output`)).json()) as { output: string };
    expect(out.output).toMatch(/\] working\n.*failed: runner_lost/s);
  }, 60000);
});
