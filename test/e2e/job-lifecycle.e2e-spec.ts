import { Stack } from '../support/stack';
import { TEST_IMAGE, waitFor } from '../support/test-env';

const PREFIX = /^\[\d{2}:\d{2}:\d{2}\.\d{3}\] /;

describe('job lifecycle (real containers)', () => {
  let stack: Stack;
  beforeAll(
    async () => (stack = await Stack.start(['api', 'runner', 'persister'], { RUNNER_CONCURRENCY: '2', JOB_TIMEOUT_MAX_SECONDS: '600', JOB_TIMEOUT_DEFAULT_SECONDS: '300' })),
    60000,
  );
  afterAll(() => stack?.stop());

  const submit = async (body: Record<string, unknown>) => {
    const r = await stack.json('POST', '/jobs', { image: TEST_IMAGE, ...body });
    expect(r.status).toBe(201);
    return r.body;
  };
  const output = async (id: string) =>
    ((await stack.json('GET', `/jobs/${id}/output?tail=10000`)).body.output as string)
      .split('\n')
      .filter(Boolean)
      .map((l) => l.replace(PREFIX, ''));

  it('completes with exit code 0 and lifecycle lines in the log', async () => {
    const { job } = await stack.waitTerminal((await submit({ command: ['echo', 'fine'] })).id);
    expect(job).toMatchObject({ status: 'completed', exit_code: 0, error: null });
    expect(job.runner_id).toEqual(expect.any(String));
    const lines = await output(job.id);
    expect(lines[0]).toBe(`image ${TEST_IMAGE} found locally`);
    expect(lines).toEqual(expect.arrayContaining(['starting container', 'fine', 'exited with code 0']));
    expect(lines[lines.length - 1]).toBe('exited with code 0');
  });

  it('fails fast with image_not_found when the image is missing and cannot be pulled', async () => {
    const started = Date.now();
    const { job } = await stack.waitTerminal((await submit({ image: 'flashpods/no-such-image:never', command: ['true'] })).id, 120000);
    expect(job).toMatchObject({ status: 'failed', exit_code: null, error: { code: 'image_not_found' } });
    expect(job.error.message).toContain('flashpods/no-such-image:never');
    expect(Date.now() - started).toBeLessThan(60000);
    const lines = await output(job.id);
    expect(lines[0]).toBe('pulling image flashpods/no-such-image:never');
    expect(lines[lines.length - 1]).toMatch(/^failed: image_not_found: /);
  }, 130000);

  it('kills a job past its timeout within two seconds and ends it timed_out', async () => {
    const created = await submit({ command: ['sh', '-c', 'echo begin; sleep 30; echo never'], timeout_seconds: 2 });
    const { job } = await stack.waitTerminal(created.id);
    expect(job.status).toBe('timed_out');
    // Not killed early: the runner arms the timeout after the claim (`started_at`), before it checks
    // the image and creates and starts the container, which a loaded machine may take seconds to do
    // (so `running_at` may come late). Killed within two seconds of the timeout, counted from `running_at`.
    expect(Date.parse(job.finished_at) - Date.parse(job.started_at)).toBeGreaterThanOrEqual(2000);
    expect(Date.parse(job.finished_at) - Date.parse(job.running_at)).toBeLessThan(4000);
    const lines = await output(job.id);
    expect(lines).toContain('begin');
    expect(lines).not.toContain('never');
    expect(lines[lines.length - 1]).toMatch(/^killed: timeout of 2 s exceeded/);
  });

  it('cancels a running job: killed at once, cancelled, and 409 on a second cancel', async () => {
    const created = await submit({ command: ['sh', '-c', 'echo up; sleep 60'] });
    await waitFor('the job to run', async () => ((await stack.json('GET', `/jobs/${created.id}`)).body.status === 'running' ? true : undefined));
    const requested = Date.now();
    expect((await stack.json('POST', `/jobs/${created.id}/cancel`)).status).toBe(202);
    const { job } = await stack.waitTerminal(created.id);
    expect(job.status).toBe('cancelled');
    expect(Date.now() - requested).toBeLessThan(5000);
    expect((await output(job.id)).pop()).toMatch(/^killed: cancelled/);
    const again = await stack.json('POST', `/jobs/${created.id}/cancel`);
    expect([again.status, again.body.error]).toEqual([409, 'job_terminal']);
  });

  it('ends an OOM-killed job failed with oom_killed', async () => {
    const created = await submit({
      command: ['awk', 'BEGIN{s="xxxxxxxxxxxxxxxx"; while (1) s = s s}'],
      limits: { memory_mb: 16 },
    });
    const { job } = await stack.waitTerminal(created.id);
    expect(job).toMatchObject({ status: 'failed', error: { code: 'oom_killed' }, exit_code: 137 });
  });

  it('deletes a terminal job and its log (204), refuses while running (409)', async () => {
    const running = await submit({ command: ['sleep', '30'] });
    await waitFor('the job to run', async () => ((await stack.json('GET', `/jobs/${running.id}`)).body.status === 'running' ? true : undefined));
    const refused = await stack.json('DELETE', `/jobs/${running.id}`);
    expect([refused.status, refused.body.error]).toEqual([409, 'job_not_terminal']);
    await stack.json('POST', `/jobs/${running.id}/cancel`);
    await stack.waitTerminal(running.id);
    expect((await stack.json('DELETE', `/jobs/${running.id}`)).status).toBe(204);
    expect((await stack.json('GET', `/jobs/${running.id}`)).status).toBe(404);
    expect((await stack.json('GET', `/jobs/${running.id}/output`)).body.error).toBe('job_not_found');
    expect((await stack.json('DELETE', `/jobs/${running.id}`)).status).toBe(404);
  });

  it('never runs more than RUNNER_CONCURRENCY jobs at once on a runner', async () => {
    const jobs = await Promise.all(
      [1, 2, 3, 4].map(() => submit({ command: ['sleep', '1'], labels: { batch: 'concurrency' } })),
    );
    const done = await Promise.all(jobs.map((j) => stack.waitTerminal(j.id)));
    const spans = done.map(({ job }) => [Date.parse(job.started_at), Date.parse(job.finished_at)]);
    const peak = Math.max(...spans.map(([s]) => spans.filter(([a, b]) => a <= s && s < b).length));
    expect(peak).toBeLessThanOrEqual(2);
    expect(done.every(({ job }) => job.status === 'completed')).toBe(true);
  });
});

describe('jobs that never start (no runner)', () => {
  let stack: Stack;
  beforeAll(async () => (stack = await Stack.start(['api'])), 60000);
  afterAll(() => stack?.stop());

  it('cancels a pending job without starting it', async () => {
    const created = (await stack.json('POST', '/jobs', { image: TEST_IMAGE, command: ['echo', 'never'] })).body;
    const r = await stack.json('POST', `/jobs/${created.id}/cancel`);
    expect(r.status).toBe(202);
    expect(r.body).toMatchObject({ status: 'cancelled', started_at: null, runner_id: null });
    expect(r.body.finished_at).toEqual(expect.any(String));
    // A runner arriving later does not run it. A job queued after it is the positive signal: once
    // the runner has run that one, it has been through the queue past the cancelled job.
    const probe = (await stack.json('POST', '/jobs', { image: TEST_IMAGE, command: ['echo', 'probe'] })).body;
    stack.startService('persister');
    stack.startService('runner');
    try {
      const { job: ran } = await stack.waitTerminal(probe.id);
      expect(ran.status).toBe('completed');
      expect(Date.parse(ran.started_at)).toBeGreaterThan(Date.parse(r.body.finished_at));
      expect((await stack.json('GET', `/jobs/${created.id}`)).body).toMatchObject({ status: 'cancelled', started_at: null, runner_id: null });
    } finally {
      // The rest of this block is about jobs that never start.
      await stack.stopService('runner');
      await stack.stopService('persister');
    }
  });

  it('lists newest first, filters by status and label, and pages with an opaque cursor', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await stack.json('POST', '/jobs', { image: TEST_IMAGE, command: ['true'], labels: { team: i % 2 ? 'odd' : 'even', n: String(i) } });
      ids.push(r.body.id);
    }
    const page1 = await stack.json('GET', '/jobs?label=team%3Deven&limit=2');
    expect(page1.status).toBe(200);
    const page2 = await stack.json('GET', `/jobs?label=team%3Deven&limit=2&cursor=${page1.body.next_cursor}`);
    const even = [...page1.body.jobs, ...page2.body.jobs].map((j: any) => j.id);
    expect(even).toEqual([ids[4], ids[2], ids[0]]);
    expect(page2.body.next_cursor).toBeNull();
    await stack.json('POST', `/jobs/${ids[3]}/cancel`);
    const cancelled = await stack.json('GET', '/jobs?status=cancelled&label=team%3Dodd');
    expect(cancelled.body.jobs.map((j: any) => j.id)).toEqual([ids[3]]);
    for (const bad of ['status=sleeping', 'limit=0', 'limit=201', 'label=novalue', 'cursor=garbage', 'cursor=' + 'x'.repeat(300), 'unknown=1']) {
      const r = await stack.json('GET', `/jobs?${bad}`);
      expect([bad, r.status, r.body.error]).toEqual([bad, 400, 'invalid_request']);
    }
  });

  it('refuses each kind of invalid body with 400 naming the field, or 413 when too large', async () => {
    const cases: [unknown, string][] = [
      [{}, 'image: Required'],
      [{ image: '' }, 'image'],
      [{ image: 'has space' }, 'image'],
      [{ image: 5 }, 'image'],
      [{ image: 'x', command: 'echo hi' }, 'command'],
      [{ image: 'x', command: [] }, 'command'],
      [{ image: 'x', command: ['echo', 1] }, 'command.1'],
      [{ image: 'x', env: { A: 1 } }, 'env.A'],
      [{ image: 'x', env: { 'BAD-NAME': 'v' } }, 'env'],
      [{ image: 'x', env: ['A=1'] }, 'env'],
      [{ image: 'x', secrets: { TOKEN: 'abc' } }, 'secrets'],
      [{ image: 'x', env: { T: 'v' }, secrets: { T: 'value' } }, 'secrets.T'],
      [{ image: 'x', labels: { k: 1 } }, 'labels.k'],
      [{ image: 'x', timeout_seconds: 0 }, 'timeout_seconds'],
      [{ image: 'x', timeout_seconds: 86401 }, 'timeout_seconds'],
      [{ image: 'x', timeout_seconds: 1.5 }, 'timeout_seconds'],
      [{ image: 'x', timeout_seconds: '10' }, 'timeout_seconds'],
      [{ image: 'x', limits: { memory_mb: 999999 } }, 'limits.memory_mb'],
      [{ image: 'x', limits: { cpus: 0 } }, 'limits.cpus'],
      [{ image: 'x', limits: { pids: -1 } }, 'limits.pids'],
      [{ image: 'x', limits: { disk: 1 } }, 'unknown field(s) disk'],
      [{ image: 'x', network: true }, 'network'],
      [{ image: 'x', privileged: true }, 'unknown field(s) privileged'],
      [[], 'body must be a JSON object'],
      ['"just a string"', 'body must be a JSON object'],
      ['null', 'body must be a JSON object'],
      ['{"image":', 'not valid JSON'],
    ];
    for (const [body, field] of cases) {
      const r = await stack.json('POST', '/jobs', body);
      expect([JSON.stringify(body), r.status, r.body.error]).toEqual([JSON.stringify(body), 400, 'invalid_request']);
      expect(r.body.message).toContain(field);
    }
    const huge = await stack.json('POST', '/jobs', { image: 'x', command: ['echo', 'y'.repeat(300 * 1024)] });
    expect([huge.status, huge.body.error]).toEqual([413, 'payload_too_large']);
    const list = await stack.json('GET', '/jobs?limit=200');
    expect(list.body.jobs.every((j: any) => j.image !== 'x')).toBe(true);
  });

  it('needs a bearer token', async () => {
    const none = await fetch(`${stack.baseUrl}/jobs`);
    expect(none.status).toBe(401);
    const bad = await fetch(`${stack.baseUrl}/jobs`, { headers: { authorization: 'Bearer nope' } });
    expect(await bad.json()).toEqual({ error: 'unauthorized', message: 'invalid token' });
  });
});
