import { Stack } from '../support/stack';
import { TEST_IMAGE } from '../support/test-env';

const LIFECYCLE = ['pending', 'starting', 'running', 'failed'];
const PREFIX = /^\[\d{2}:\d{2}:\d{2}\.\d{3}\] /;

describe('walking skeleton: one job from POST to log file', () => {
  let stack: Stack;
  beforeAll(async () => (stack = await Stack.start(['api', 'runner', 'persister'])), 60000);
  afterAll(() => stack?.stop());

  it('runs a failing job through pending → starting → running → failed with both lines in order', async () => {
    const created = await stack.json('POST', '/jobs', {
      image: TEST_IMAGE,
      command: ['sh', '-c', 'echo hello; echo oops >&2; exit 3'],
    });
    expect(created.status).toBe(201);
    expect(created.body.status).toBe('pending');

    const { job, seen } = await stack.waitTerminal(created.body.id);
    // Every status observed by polling is in lifecycle order, and the stored timestamps
    // show each transition happened, in order.
    const order = ['pending', ...seen].map((s) => LIFECYCLE.indexOf(s));
    expect(order.every((v, i) => v >= 0 && (i === 0 || v >= order[i - 1]))).toBe(true);
    expect(job).toMatchObject({ status: 'failed', exit_code: 3, error: { code: 'nonzero_exit' } });
    const t = ['created_at', 'started_at', 'running_at', 'finished_at'].map((k) => Date.parse(job[k]));
    expect(t.every((v, i) => !Number.isNaN(v) && (i === 0 || v >= t[i - 1]))).toBe(true);

    const out = await stack.json('GET', `/jobs/${job.id}/output`);
    expect(out.status).toBe(200);
    const lines: string[] = out.body.output.split('\n').filter(Boolean);
    for (const l of lines) expect(l).toMatch(PREFIX);
    const user = lines.map((l) => l.replace(PREFIX, '')).filter((l) => l === 'hello' || l === 'oops');
    expect(user).toEqual(['hello', 'oops']);
    expect(lines[lines.length - 1].replace(PREFIX, '')).toBe('exited with code 3');
    expect(out.body).toMatchObject({ lines: lines.length, truncated: false, total_bytes: job.log.bytes });
  });
});
