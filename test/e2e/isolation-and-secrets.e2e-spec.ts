import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import { DataSource } from 'typeorm';
import { Stack } from '../support/stack';
import { TEST_IMAGE, waitFor } from '../support/test-env';

const PREFIX = /^\[\d{2}:\d{2}:\d{2}\.\d{3}\] /;

describe('container isolation and secrets (real containers)', () => {
  let stack: Stack;
  beforeAll(async () => (stack = await Stack.start(['api', 'runner', 'persister'])), 60000);
  afterAll(() => stack?.stop());

  const runToEnd = async (body: Record<string, unknown>) => {
    const created = await stack.json('POST', '/jobs', { image: TEST_IMAGE, ...body });
    expect(created.status).toBe(201);
    return (await stack.waitTerminal(created.body.id)).job;
  };
  const lines = async (id: string) =>
    ((await stack.json('GET', `/jobs/${id}/output?tail=10000`)).body.output as string)
      .split('\n')
      .filter(Boolean)
      .map((l) => l.replace(PREFIX, ''));

  it('runs with no capabilities, no-new-privileges, no network, and a pids limit', async () => {
    const job = await runToEnd({
      command: ['sh', '-c', 'grep -E "^(CapEff|CapPrm|NoNewPrivs)" /proc/self/status; cat /proc/net/dev | grep -c ":"; cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max; ls /var/run/docker.sock 2>&1 || true'],
      limits: { pids: 32 },
    });
    expect(job.status).toBe('completed');
    const out = await lines(job.id);
    expect(out).toContain('CapEff:\t0000000000000000');
    expect(out).toContain('CapPrm:\t0000000000000000');
    expect(out).toContain('NoNewPrivs:\t1');
    expect(out).toContain('1'); // only the loopback interface
    expect(out).toContain('32');
    expect(out.some((l) => /docker\.sock.*No such file/.test(l))).toBe(true);
  });

  it('contains a fork storm with the pids limit: forks fail inside, the job ends, the next job runs', async () => {
    const job = await runToEnd({
      command: ['sh', '-c', 'i=0; while [ $i -lt 200 ]; do sleep 30 & i=$((i+1)); done; echo "never reached"'],
      limits: { pids: 16 },
      timeout_seconds: 20,
    });
    // busybox sh gives up when fork fails: the storm ends the job instead of the host.
    expect(job).toMatchObject({ status: 'failed', exit_code: 2, error: { code: 'nonzero_exit' } });
    const out = await lines(job.id);
    expect(out.some((l) => /can't fork/.test(l))).toBe(true);
    expect(out).not.toContain('never reached');
    const next = await runToEnd({ command: ['echo', 'still fine'] });
    expect(next.status).toBe('completed');
  });

  it('injects secrets as env vars, masks them in every stored and streamed line even when split across writes, and keeps them out of the API, Postgres and Redis', async () => {
    const secret = 'sup3r-s3cret-value';
    const job = await runToEnd({
      command: ['sh', '-c', 'echo "token=$API_TOKEN"; printf "sup3r-s"; sleep 0.05; printf "3cret-value and more\\n"; echo "$API_TOKEN" >&2'],
      secrets: { API_TOKEN: secret },
      env: { VISIBLE: 'yes' },
    });
    expect(job.status).toBe('completed');
    expect(job.secrets).toEqual(['API_TOKEN']);
    expect(JSON.stringify(job)).not.toContain(secret);
    const out = await lines(job.id);
    expect(out).toEqual(expect.arrayContaining(['token=[MASKED]', '[MASKED] and more', '[MASKED]']));
    const file = Buffer.from(await (await stack.request('GET', `/jobs/${job.id}/logs/download`)).arrayBuffer());
    expect(file.includes(secret)).toBe(false);
    const structured = await stack.json('GET', `/jobs/${job.id}/logs?limit=1000`);
    expect(JSON.stringify(structured.body)).not.toContain(secret);

    const ds = await new DataSource({ type: 'postgres', url: stack.world.databaseUrl }).initialize();
    try {
      const rows = await ds.query('SELECT * FROM jobs WHERE id = $1', [job.id]);
      expect(JSON.stringify(rows)).not.toContain(secret);
    } finally {
      await ds.destroy();
    }
    const redis = new Redis(stack.world.env.REDIS_URL);
    try {
      const keys = await redis.keys(`${stack.world.redisPrefix}*`);
      for (const key of keys) {
        const type = await redis.type(key);
        const dump = type === 'string' ? await redis.get(key) : type === 'hash' ? JSON.stringify(await redis.hgetall(key)) : type === 'stream' ? JSON.stringify(await redis.xrange(key, '-', '+')) : '';
        expect([key, String(dump).includes(secret)]).toEqual([key, false]);
      }
    } finally {
      redis.disconnect();
    }
  });
});

describe('process executor', () => {
  let stack: Stack;
  beforeAll(async () => (stack = await Stack.start(['api', 'runner', 'persister'], { RUNNER_EXECUTOR: 'process' })), 60000);
  afterAll(() => stack?.stop());

  it('runs the same lifecycle with the same logs, timeouts and cancels', async () => {
    const ok = await stack.json('POST', '/jobs', { image: 'ignored', command: ['sh', '-c', 'echo out; sleep 0.05; echo err >&2; exit 4'] });
    const { job } = await stack.waitTerminal(ok.body.id);
    expect(job).toMatchObject({ status: 'failed', exit_code: 4, error: { code: 'nonzero_exit' } });
    const out = ((await stack.json('GET', `/jobs/${job.id}/output`)).body.output as string).split('\n').filter(Boolean).map((l) => l.replace(PREFIX, ''));
    expect(out).toEqual(expect.arrayContaining(['out', 'err', 'exited with code 4']));
    expect(out.indexOf('out')).toBeLessThan(out.indexOf('err'));

    const slow = await stack.json('POST', '/jobs', { image: 'ignored', command: ['sleep', '30'], timeout_seconds: 1 });
    expect((await stack.waitTerminal(slow.body.id)).job.status).toBe('timed_out');

    const running = await stack.json('POST', '/jobs', { image: 'ignored', command: ['sleep', '30'] });
    await waitFor('running', async () => ((await stack.json('GET', `/jobs/${running.body.id}`)).body.status === 'running' ? true : undefined));
    await stack.json('POST', `/jobs/${running.body.id}/cancel`);
    expect((await stack.waitTerminal(running.body.id)).job.status).toBe('cancelled');

    const missing = await stack.json('POST', '/jobs', { image: 'ignored', command: ['/no/such/binary'] });
    expect((await stack.waitTerminal(missing.body.id)).job).toMatchObject({ status: 'failed', error: { code: 'runner_error' } });
  });
});

describe('multi-line secrets and secrets cut by the line limit (real containers)', () => {
  let stack: Stack;
  beforeAll(async () => (stack = await Stack.start(['api', 'runner', 'persister'], { LOG_LINE_MAX_BYTES: '1024' })), 60000);
  afterAll(() => stack?.stop());

  /** A PEM-shaped key: random base64 in 64-character lines between the usual armour. */
  const body = randomBytes(700).toString('base64');
  const pem = ['-----BEGIN PRIVATE KEY-----', ...(body.match(/.{1,64}/g) as string[]), '-----END PRIVATE KEY-----'].join('\n');
  const pemLines = pem.split('\n');
  const single = 'Zq9Xw7Kp3Vm5Rt1Yb8Nc';
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

  it('masks every line of a PEM key printed whole, line by line and split by writes, and a secret the line limit cuts', async () => {
    // Split by writes at odd offsets, so cuts fall inside lines and inside the armour.
    const pieces: string[] = [];
    for (let i = 0; i < pem.length; i += 37) pieces.push(pem.slice(i, i + 37));
    const script = [
      'echo whole:',
      'printf "%s\\n" "$PRIVATE_KEY"',
      'echo by-line:',
      'printf "%s\\n" "$PRIVATE_KEY" | while IFS= read -r l; do printf "%s\\n" "$l"; sleep 0.01; done',
      'echo by-writes:',
      ...pieces.map((p) => `printf '%s' ${q(p)}; sleep 0.01`),
      'echo',
      'echo limit:',
      // 1010 bytes then the 20-byte secret: the 1024-byte split falls inside it.
      `printf '%s' ${'a'.repeat(1010)}; sleep 0.05; printf '%s\\n' "$SPLIT_ME"`,
      `printf '%s' ${'b'.repeat(1020)}; printf '%s' "$SPLIT_ME" | head -c 7; sleep 0.05; printf '%s\\n' ${single.slice(7)}`,
    ].join('\n');
    const created = await stack.json('POST', '/jobs', {
      image: TEST_IMAGE,
      command: ['sh', '-c', script],
      secrets: { PRIVATE_KEY: pem, SPLIT_ME: single },
    });
    expect(created.status).toBe(201);
    const { job } = await stack.waitTerminal(created.body.id);
    expect(job.status).toBe('completed');
    const file = Buffer.from(await (await stack.request('GET', `/jobs/${job.id}/logs/download`)).arrayBuffer()).toString();
    // The lines only: the job view carries the command, which holds the by-writes pieces itself.
    const structured = JSON.stringify((await stack.json('GET', `/jobs/${job.id}/logs?limit=1000`)).body.logs);
    const stdout = await stack.json('GET', `/jobs/${job.id}/logs?limit=1000&stream=stdout`);
    const stored = (stdout.body.logs as { line: string }[]).map((l) => l.line);
    for (const text of [file, structured]) {
      for (const line of pemLines) expect([line, text.includes(line)]).toEqual([line, false]);
      // No 6-byte piece of the single-line secret survives on either side of a cut.
      for (let i = 0; i + 6 <= single.length; i++) expect([single.slice(i, i + 6), text.includes(single.slice(i, i + 6))]).toEqual([single.slice(i, i + 6), false]);
    }
    const masked = (from: string, to: string) => stored.slice(stored.indexOf(from) + 1, stored.indexOf(to));
    expect(masked('whole:', 'by-line:')).toEqual(pemLines.map(() => '[MASKED]'));
    expect(masked('by-line:', 'by-writes:')).toEqual(pemLines.map(() => '[MASKED]'));
    expect(masked('by-writes:', 'limit:')).toEqual(pemLines.map(() => '[MASKED]'));
    const limit = stored.slice(stored.indexOf('limit:') + 1);
    expect(limit.every((l) => Buffer.byteLength(l) <= 1024)).toBe(true);
    expect(limit.join('')).toBe(`${'a'.repeat(1010)}[MASKED]${'b'.repeat(1020)}[MASKED]`);
  }, 90000);
});
