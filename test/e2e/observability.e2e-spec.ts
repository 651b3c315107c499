import { DataSource } from 'typeorm';
import { MIGRATIONS } from '@flashpods/database';
import { Stack } from '../support/stack';
import { TEST_IMAGE, waitFor } from '../support/test-env';

const WORKERS = ['runner', 'persister', 'janitor'] as const;
const HEARTBEAT_MS = 300;

/** The value of one sample in Prometheus text format; a series not exported yet counts as 0. */
function sample(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

describe('four services started at once on an empty database; metrics; SSE heartbeats', () => {
  let stack: Stack;
  beforeAll(async () => {
    // Stack.start spawns api, runner, persister and janitor together on a fresh database: each
    // migrates at start, so they race for the migration lock.
    stack = await Stack.start(['api', 'runner', 'persister', 'janitor'], { API_SSE_HEARTBEAT_MS: String(HEARTBEAT_MS) });
    await waitFor(
      'every worker service to say it is ready',
      async () => (WORKERS.every((w) => stack.logsOf(w).includes(`${w} ready`)) ? true : undefined),
      30000,
      100,
    );
  }, 90000);
  afterAll(() => stack?.stop());

  it('applies the schema once, with no error, whichever service wins the race', async () => {
    for (const s of ['api', ...WORKERS]) expect([s, stack.pidOf(s) !== undefined]).toEqual([s, true]);
    const ds = await new DataSource({ type: 'postgres', url: stack.world.databaseUrl }).initialize();
    try {
      const rows: { name: string }[] = await ds.query('SELECT name FROM migrations ORDER BY id');
      expect(rows.map((r) => r.name)).toEqual(MIGRATIONS.map((m) => m.name));
    } finally {
      await ds.destroy();
    }
    // Exactly one service applied them all; the others found nothing to do.
    const appliers = ['api', ...WORKERS].filter((s) => stack.logsOf(s).includes('applied migrations'));
    expect(appliers).toHaveLength(1);
    for (const s of ['api', ...WORKERS]) expect([s, /QueryFailedError|already exists|duplicate key/.test(stack.logsOf(s))]).toEqual([s, false]);
  });

  it('/metrics job counts move by exactly the jobs that finished: completed +2, failed +1, none left pending', async () => {
    const run = async (command: string[]) => (await stack.json('POST', '/jobs', { image: TEST_IMAGE, command })).body.id as string;
    // One job first, so the counts start from a value that is not zero.
    expect((await stack.waitTerminal(await run(['echo', 'first']))).job.status).toBe('completed');
    const before = await (await fetch(`${stack.baseUrl}/metrics`)).text();
    const ids = [await run(['echo', 'one']), await run(['sh', '-c', 'exit 4']), await run(['echo', 'two'])];
    const statuses = [];
    for (const id of ids) statuses.push((await stack.waitTerminal(id)).job.status);
    expect(statuses).toEqual(['completed', 'failed', 'completed']);
    const after = await (await fetch(`${stack.baseUrl}/metrics`)).text();
    const delta = (series: string) => sample(after, series) - sample(before, series);
    expect({
      completedBefore: sample(before, 'flashpods_jobs{status="completed"}'),
      completed: delta('flashpods_jobs{status="completed"}'),
      failed: delta('flashpods_jobs{status="failed"}'),
      pending: sample(after, 'flashpods_jobs{status="pending"}'),
      running: sample(after, 'flashpods_jobs{status="running"}'),
    }).toEqual({ completedBefore: 1, completed: 2, failed: 1, pending: 0, running: 0 });
  });

  it('sends a heartbeat comment on an idle log stream every API_SSE_HEARTBEAT_MS', async () => {
    const job = (await stack.json('POST', '/jobs', { image: TEST_IMAGE, command: ['sh', '-c', 'echo up; sleep 5; echo done'] })).body;
    await waitFor('the job to run', async () => ((await stack.json('GET', `/jobs/${job.id}`)).body.status === 'running' ? true : undefined), 30000, 50);
    const controller = new AbortController();
    const res = await fetch(`${stack.baseUrl}/jobs/${job.id}/logs/stream`, {
      headers: { authorization: `Bearer ${stack.token}`, accept: 'text/event-stream' },
      signal: controller.signal,
    });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    const pings: number[] = [];
    let text = '';
    const window = 2000;
    const started = Date.now();
    try {
      while (Date.now() - started < window) {
        const { value, done } = await reader.read();
        if (done) break;
        const chunk = decoder.decode(value, { stream: true });
        text += chunk;
        for (const _ of chunk.matchAll(/^: ping$/gm)) pings.push(Date.now() - started);
      }
    } finally {
      controller.abort();
    }
    // The job is asleep: the line `up` came, then only heartbeats, about every 300 ms.
    expect(text).toContain('"line":"up"');
    expect(pings.length).toBeGreaterThanOrEqual(Math.floor(window / HEARTBEAT_MS) - 2);
    expect(pings.length).toBeLessThanOrEqual(Math.ceil(window / HEARTBEAT_MS) + 1);
    const gaps = pings.slice(1).map((t, i) => t - pings[i]);
    for (const g of gaps) expect(g).toBeLessThan(3 * HEARTBEAT_MS);
    await stack.waitTerminal(job.id);
  });
});
