import Docker from 'dockerode';
import { recordChaos } from '../support/chaos-report';
import { gate, release } from '../support/gate';
import { auditLog } from '../support/log-audit';
import { Stack } from '../support/stack';
import { TEST_IMAGE, waitFor } from '../support/test-env';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A job that prints `line 1` … `line n`, about one every `gap` seconds. */
const counter = (n: number, gap = '0.002') => ['sh', '-c', `i=1; while [ $i -le ${n} ]; do echo "line $i"; i=$((i+1)); sleep ${gap}; done`];

const GAP_LINE = /^\[\d{2}:\d{2}:\d{2}\.\d{3}\] fast mode: output written while no runner was attached \(between (\S+) and (the container's exit at )?(\S+), after line (\d+)\) was not captured$/;

/** The stored log, read the ways a user and the storage read it; fails on any disagreement between them. */
async function storedLog(stack: Stack, id: string) {
  const audit = await auditLog(stack, id);
  expect(audit.problems).toEqual([]);
  const text = await (await stack.request('GET', `/jobs/${id}/logs/download`)).text();
  const lines = text.split('\n').filter(Boolean);
  return { numbers: audit.numbers, lines, gaps: lines.map((l, i) => [i, GAP_LINE.exec(l)] as const).filter(([, m]) => m !== null) };
}

/** Strictly increasing: no line twice, none out of order. */
const increasing = (xs: number[]) => xs.every((v, i) => i === 0 || v > xs[i - 1]);

/** Waits until `line 1` is in the stored log: a line still in the runner's 50 ms chunk dies with it. */
async function firstLineStored(stack: Stack, id: string): Promise<void> {
  await waitFor('the first line stored', async () => {
    const out = (await (await stack.request('GET', `/jobs/${id}/output`)).json()) as { output?: string };
    return out.output?.includes('] line 1\n') ? true : undefined;
  }, 20000, 20);
}

describe('fast log mode (RUNNER_LOG_MODE=fast): a runner crash leaves a gap, and the job says so', () => {
  let stack: Stack;
  beforeAll(
    async () =>
      (stack = await Stack.start(['api', 'persister', 'janitor'], {
        RUNNER_HEARTBEAT_SECONDS: '1',
        LIVENESS_INTERVAL_SECONDS: '1',
        PERSISTER_CLAIM_IDLE_MS: '2000',
      })),
    60000,
  );
  afterAll(() => stack?.stop());

  /** Only one runner runs at a time here, so the test knows which one holds the job. */
  async function only(name: 'fast' | 'durable'): Promise<void> {
    await stack.stopService('runner-durable');
    await stack.stopService('runner-fast');
    stack.startService('runner', `runner-${name}`, { RUNNER_LOG_MODE: name });
  }

  it('with no fault, a fast-mode job keeps every line, says fast, and has no gap', async () => {
    await only('fast');
    const job = (await stack.json('POST', '/jobs', { image: TEST_IMAGE, command: counter(500, '0') })).body;
    const { job: done } = await stack.waitTerminal(job.id, 60000);
    expect(done).toMatchObject({ status: 'completed', exit_code: 0, log: { mode: 'fast', lines_lost: false } });
    const log = await storedLog(stack, job.id);
    expect(log.numbers).toEqual(Array.from({ length: 500 }, (_, i) => i + 1));
    expect(log.gaps).toEqual([]);
    expect(log.lines.some((l) => /container [0-9a-f]{12} created \(fast log mode/.test(l))).toBe(true);
  }, 60000);

  it('runner kill -9 mid-output, restarted with the same RUNNER_ID: a system line at the gap, lines_lost, each line before and after it once and in order', async () => {
    await only('fast');
    // It prints `line 1`, `line 2`, … one every few ms until the test opens its gate, then says how
    // many it printed: it is still printing when the restarted runner attaches, however slow the machine.
    const job = (await stack.json('POST', '/jobs', {
      image: TEST_IMAGE,
      command: ['sh', '-c', 'i=1; while [ ! -e /tmp/go ]; do echo "line $i"; i=$((i+1)); sleep 0.002; done; echo "printed $((i-1)) lines"'],
    })).body;
    // Well into the output, so that a restarted runner wrongly skipping what it shipped before
    // (as a durable replay does) would drop seconds of new lines after the gap, which shows below.
    await waitFor('1000 lines stored', async () => ((await stack.json('GET', `/jobs/${job.id}`)).body.log.lines > 1000 ? true : undefined), 30000, 20);
    const startedAt = Date.parse((await stack.json('GET', `/jobs/${job.id}`)).body.started_at);
    await stack.stopService('runner-fast', 'SIGKILL');
    const killedAt = Date.now();
    await sleep(1000); // the container keeps printing, and nobody keeps a copy
    stack.startService('runner', 'runner-fast', { RUNNER_LOG_MODE: 'fast' });
    // Flagged while it runs on, not only at its end.
    const flagged = await waitFor('the flag while the job runs', async () => {
      const j = (await stack.json('GET', `/jobs/${job.id}`)).body;
      return j.log.lines_lost ? j : undefined;
    }, 30000, 50);
    // Lines read after the re-attach are stored before the job is let go.
    await waitFor('lines stored after the gap', async () => {
      const j = (await stack.json('GET', `/jobs/${job.id}`)).body;
      return j.log.lines > flagged.log.lines + 100 ? true : undefined;
    }, 30000, 50);
    await release(job.id);
    const { job: done } = await stack.waitTerminal(job.id, 60000);
    expect(done).toMatchObject({ status: 'completed', exit_code: 0, log: { mode: 'fast', lines_lost: true } });

    const log = await storedLog(stack, job.id);
    const printed = Number(/^\[[^\]]+\] printed (\d+) lines$/.exec(log.lines.find((l) => / printed \d+ lines$/.test(l)) ?? '')?.[1]);
    expect(printed).toBeGreaterThan(1000);
    expect(log.gaps).toHaveLength(1);
    const [at, m] = log.gaps[0];
    const [, since, exited, until, afterLine] = m!;
    expect(exited).toBeUndefined();
    // The gap opens after the last line the killed runner shipped and closes at the re-attach.
    expect(Date.parse(since)).toBeGreaterThanOrEqual(startedAt);
    expect(Date.parse(since)).toBeLessThanOrEqual(killedAt);
    expect(Date.parse(until)).toBeGreaterThan(killedAt);
    const before = log.lines.slice(0, at).map((l) => /\] line (\d+)$/.exec(l)).filter(Boolean).map((x) => Number(x![1]));
    const after = log.lines.slice(at + 1).map((l) => /\] line (\d+)$/.exec(l)).filter(Boolean).map((x) => Number(x![1]));
    expect(Number(afterLine)).toBeGreaterThan(before.length); // seqs count system lines too
    // Before the gap: the head, complete. After it: a run to the end, complete. Between: the loss.
    expect(before).toEqual(Array.from({ length: before.length }, (_, i) => i + 1));
    expect(after.length).toBeGreaterThan(0);
    expect(after).toEqual(Array.from({ length: after.length }, (_, i) => printed - after.length + 1 + i));
    expect(after[0]).toBeGreaterThan(before[before.length - 1] + 1);
    expect(increasing(log.numbers)).toBe(true);
    expect(log.lines[at - 1]).toMatch(/re-attached to container [0-9a-f]{12} after line \d+$/);
    // The first line after the gap is what the container printed right after the re-attach (it
    // prints one every few ms), not seconds later.
    const next = (await stack.json('GET', `/jobs/${job.id}/logs?after_seq=${at + 1}&limit=1`)).body.logs[0];
    expect(next.line).toBe(`line ${after[0]}`);
    expect(Date.parse(next.ts) - Date.parse(until)).toBeLessThan(1000);
    recordChaos({
      scenario: `fast mode: runner kill -9 mid-job, restarted: gap of ${after[0] - before[before.length - 1] - 1} lines marked (system line + lines_lost, flagged while running: ${flagged.status})`,
      expected: printed,
      found: new Set(log.numbers).size,
      duplicates: log.numbers.length - new Set(log.numbers).size,
      result: done.log.lines_lost && log.gaps.length === 1 && increasing(log.numbers) ? 'pass' : 'FAIL',
    });
  }, 90000);

  it('the same fault in durable mode: no gap, no flag, every line once', async () => {
    await only('durable');
    const job = (await stack.json('POST', '/jobs', { image: TEST_IMAGE, command: counter(3000) })).body;
    await firstLineStored(stack, job.id);
    await stack.stopService('runner-durable', 'SIGKILL');
    await sleep(1000);
    stack.startService('runner', 'runner-durable', { RUNNER_LOG_MODE: 'durable' });
    const { job: done } = await stack.waitTerminal(job.id, 60000);
    expect(done).toMatchObject({ status: 'completed', exit_code: 0, log: { mode: 'durable', lines_lost: false } });
    const log = await storedLog(stack, job.id);
    expect(log.gaps).toEqual([]);
    expect(log.numbers).toEqual(Array.from({ length: 3000 }, (_, i) => i + 1));
  }, 90000);

  it('a fast-mode container that exits while no runner is attached: the gap runs to its exit, and the job ends with its exit code', async () => {
    await only('fast');
    const job = (await stack.json('POST', '/jobs', {
      image: TEST_IMAGE,
      // The rest waits at a gate until the runner is dead.
      command: ['sh', '-c', `echo "line 1"; ${gate()}; i=2; while [ $i -le 50 ]; do echo "line $i"; i=$((i+1)); done; exit 3`],
    })).body;
    await firstLineStored(stack, job.id);
    await stack.stopService('runner-fast', 'SIGKILL');
    await release(job.id);
    const docker = new Docker();
    await waitFor('the container to exit with no runner attached', async () => {
      const [c] = await docker.listContainers({ all: true, filters: { label: [`flashpods.job_id=${job.id}`] } });
      return c?.State === 'exited' ? true : undefined;
    }, 20000, 100);
    stack.startService('runner', 'runner-fast', { RUNNER_LOG_MODE: 'fast' });
    const { job: done } = await stack.waitTerminal(job.id, 30000);
    expect(done).toMatchObject({ status: 'failed', exit_code: 3, error: { code: 'nonzero_exit' }, log: { mode: 'fast', lines_lost: true } });
    const log = await storedLog(stack, job.id);
    expect(log.numbers).toEqual([1]);
    expect(log.gaps).toHaveLength(1);
    expect(log.gaps[0][1]![2]).toBe("the container's exit at ");
    // The gap comes after line 1 and before the end.
    const lineOne = log.lines.findIndex((l) => l.endsWith('] line 1'));
    expect(log.gaps[0][0]).toBeGreaterThan(lineOne);
    expect(log.lines[log.lines.length - 1]).toMatch(/exited with code 3$/);
  }, 60000);
});
