import { DataSource } from 'typeorm';
import { Stack } from '../support/stack';
import { TEST_IMAGE, waitFor } from '../support/test-env';

describe('tokens and tenants', () => {
  let stack: Stack;
  beforeAll(async () => (stack = await Stack.start(['api', 'runner', 'persister'], { API_RATE_LIMIT_PER_MINUTE: '1000' })), 60000);
  afterAll(() => stack?.stop());

  const as = (token: string) => ({
    json: async (method: string, path: string, body?: unknown) => {
      const res = await stack.request(method, path, body, { authorization: `Bearer ${token}` });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined };
    },
  });

  it('admin creates a tenant token shown once, stored only as a hash, listed without it, revoked at once', async () => {
    const created = await stack.json('POST', '/tokens', { tenant: 'team-a', name: 'ci' });
    expect(created.status).toBe(201);
    expect(created.body.token).toMatch(/^fp_[A-Za-z0-9_-]{43}$/);
    const token: string = created.body.token;
    const list = await stack.json('GET', '/tokens');
    expect(JSON.stringify(list.body)).not.toContain(token);
    expect(list.body.tokens.map((t: any) => t.id)).toContain(created.body.id);
    const ds = await new DataSource({ type: 'postgres', url: stack.world.databaseUrl }).initialize();
    try {
      expect(JSON.stringify(await ds.query('SELECT * FROM api_tokens'))).not.toContain(token);
    } finally {
      await ds.destroy();
    }
    expect((await as(token).json('GET', '/jobs')).status).toBe(200);
    expect((await stack.json('DELETE', `/tokens/${created.body.id}`)).status).toBe(204);
    const after = await as(token).json('GET', '/jobs');
    expect([after.status, after.body.error]).toEqual([401, 'unauthorized']);
    expect((await stack.json('DELETE', `/tokens/${created.body.id}`)).status).toBe(404);
  });

  it('refuses bad token requests: 401 without or with a wrong token, 403 for a tenant managing tokens, 400 for bad fields', async () => {
    expect((await fetch(`${stack.baseUrl}/tokens`)).status).toBe(401);
    expect((await as('fp_' + 'x'.repeat(43)).json('GET', '/jobs')).status).toBe(401);
    const tenant = (await stack.json('POST', '/tokens', { tenant: 'team-b', name: 'x' })).body.token;
    expect((await as(tenant).json('POST', '/tokens', { tenant: 'team-c', name: 'y' })).status).toBe(403);
    expect((await as(tenant).json('GET', '/tokens')).status).toBe(403);
    for (const body of [{}, { tenant: 'admin', name: 'x' }, { tenant: 'UPPER', name: 'x' }, { tenant: 't', name: '' }, { tenant: 't', name: 'x', extra: 1 }]) {
      const r = await stack.json('POST', '/tokens', body);
      expect([JSON.stringify(body), r.status]).toEqual([JSON.stringify(body), 400]);
    }
  });

  it('a tenant sees only its own jobs: another tenant’s job is 404 on every endpoint, the admin sees all', async () => {
    const a = (await stack.json('POST', '/tokens', { tenant: 'alpha', name: 'a' })).body.token;
    const b = (await stack.json('POST', '/tokens', { tenant: 'beta', name: 'b' })).body.token;
    const job = (await as(a).json('POST', '/jobs', { image: TEST_IMAGE, command: ['echo', 'alpha only'] })).body;
    expect(job.tenant).toBe('alpha');
    await stack.waitTerminal(job.id);
    for (const [method, path] of [
      ['GET', `/jobs/${job.id}`],
      ['GET', `/jobs/${job.id}/output`],
      ['GET', `/jobs/${job.id}/logs`],
      ['GET', `/jobs/${job.id}/logs/stream`],
      ['GET', `/jobs/${job.id}/logs/download`],
      ['POST', `/jobs/${job.id}/cancel`],
      ['DELETE', `/jobs/${job.id}`],
    ]) {
      const r = await as(b).json(method, path);
      expect([method, path, r.status, r.body?.error]).toEqual([method, path, 404, 'job_not_found']);
    }
    expect((await as(a).json('GET', `/jobs/${job.id}/output`)).body.output).toContain('alpha only');
    expect((await as(b).json('GET', '/jobs')).body.jobs).toEqual([]);
    expect((await as(a).json('GET', '/jobs')).body.jobs.map((j: any) => j.id)).toEqual([job.id]);
    expect((await stack.json('GET', `/jobs/${job.id}`)).status).toBe(200);
    const bq = await fetch(`${stack.baseUrl}/admin/queues/api/queues`, { headers: { authorization: `Bearer ${a}` } });
    expect(bq.status).toBe(401);
  });

  it('Bull Board is for the admin and shows no secret value', async () => {
    const secret = 'bullboard-must-not-see-this';
    const job = (await stack.json('POST', '/jobs', { image: TEST_IMAGE, command: ['true'], secrets: { S: secret } })).body;
    await stack.waitTerminal(job.id);
    expect((await fetch(`${stack.baseUrl}/admin/queues`)).status).toBe(401);
    const basic = `Basic ${Buffer.from(`anyone:${stack.token}`).toString('base64')}`;
    const page = await fetch(`${stack.baseUrl}/admin/queues/api/queues?activeQueue=jobs&status=completed`, { headers: { authorization: basic } });
    expect(page.status).toBe(200);
    const text = await page.text();
    expect(text).toContain(job.id);
    expect(text).not.toContain(secret);
  });

  it('sends helmet headers and no CORS headers unless configured', async () => {
    const res = await fetch(`${stack.baseUrl}/health`, { headers: { origin: 'https://evil.example' } });
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect(res.headers.get('x-powered-by')).toBeNull();
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('rate limit', () => {
  let stack: Stack;
  beforeAll(async () => (stack = await Stack.start(['api'], { API_RATE_LIMIT_PER_MINUTE: '20' })), 60000);
  afterAll(() => stack?.stop());

  it('answers 429 with Retry-After past the per-token limit, and counts each token on its own', async () => {
    const other = (await stack.json('POST', '/tokens', { tenant: 'other', name: 'o' })).body.token;
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 25; i++) {
      const res = await stack.request('GET', '/jobs');
      statuses.push(res.status);
      if (res.status === 429) {
        retryAfter = res.headers.get('retry-after');
        expect(((await res.json()) as { error: string }).error).toBe('rate_limited');
      }
    }
    // The token creation above was the first request of the admin's window.
    expect(statuses.filter((s) => s === 200).length).toBe(19);
    expect(statuses.slice(19).every((s) => s === 429)).toBe(true);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
    expect(Number(retryAfter)).toBeLessThanOrEqual(60);
    const res = await stack.request('GET', '/jobs', undefined, { authorization: `Bearer ${other}` });
    expect(res.status).toBe(200);
  });
});

describe('fuzz: malformed requests across every endpoint', () => {
  let stack: Stack;
  beforeAll(async () => (stack = await Stack.start(['api'], { API_RATE_LIMIT_PER_MINUTE: '100000' })), 60000);
  afterAll(() => stack?.stop());

  /** A small deterministic generator, so a failure can be replayed. */
  function rng(seed: number) {
    return () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  }

  it('answers 1,200 generated malformed requests without a 5xx, stays up, and writes nothing', async () => {
    const rand = rng(42);
    const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)];
    const valid = (await stack.json('POST', '/jobs', { image: TEST_IMAGE, command: ['true'] })).body.id as string;
    const ids = [valid, 'x', '../../etc/passwd', "1' OR '1'='1", '%00', '0'.repeat(5000), '-1', '1e309', 'ünïcødé', '00000000-0000-0000-0000-000000000000', '%2e%2e%2f', ';DROP TABLE jobs;--'];
    const scalars: unknown[] = ['', 'x'.repeat(70000), -1, 0, 1e309, -1e308, 1.5, true, false, null, [], {}, '🎉'.repeat(100), '\u0000', '../', "' OR 1=1 --", 9007199254740993, '<script>'];
    const fields = ['image', 'command', 'env', 'secrets', 'labels', 'timeout_seconds', 'limits', 'network', 'tenant', 'name', '__proto__', 'constructor'];
    const bodies = (): string => {
      const r = rand();
      if (r < 0.15) return pick(['{', '}', '[', '{"image":', 'nul', '"', '{"a":1,}', '\u0000', '{"image":"x"}}', '']);
      if (r < 0.25) return JSON.stringify(pick(scalars));
      const o: Record<string, unknown> = {};
      for (let i = 0, n = Math.floor(rand() * 4) + 1; i < n; i++) {
        const f = pick(fields);
        o[f] = rand() < 0.3 ? { [pick(fields)]: pick(scalars), memory_mb: pick(scalars) } : rand() < 0.2 ? [pick(scalars), pick(scalars)] : pick(scalars);
      }
      if (rand() < 0.2) delete o.image;
      return JSON.stringify(o);
    };
    const queries = () => pick(['', '?tail=' + pick(['0', '-5', 'abc', '1e9', '', '%00', '10001']), '?limit=' + pick(['0', 'x', '-1', '1e3']), '?after_seq=' + pick(['-1', 'x', '1e400']), '?status=' + pick(['x', '', "'"]), '?label=' + pick(['x', '=', '%3D%3D']), '?cursor=' + pick(['x', '%ff', 'eyJ']), '?level=' + pick(['x', ',,', 'error,x']), '?since=' + pick(['x', '-1', '']), '?stream=' + pick(['stdin', '']), '?q=' + 'x'.repeat(2000)]);
    const endpoints = (): [string, string] => {
      const id = encodeURIComponent(pick(ids));
      return pick<[string, string]>([
        ['POST', '/jobs'],
        ['GET', '/jobs'],
        ['GET', `/jobs/${id}`],
        ['POST', `/jobs/${id}/cancel`],
        ['DELETE', `/jobs/${id}`],
        ['GET', `/jobs/${id}/output`],
        ['GET', `/jobs/${id}/logs`],
        ['GET', `/jobs/${id}/logs/download`],
        ['POST', '/tokens'],
        ['DELETE', `/tokens/${id}`],
        ['PUT', `/jobs/${id}`],
        ['PATCH', '/jobs'],
      ]);
    };
    const contentTypes = ['application/json', 'text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=latin1', 'multipart/form-data'];
    const before = await stack.json('GET', '/jobs?limit=200');
    const fiveHundreds: string[] = [];
    const counts = new Map<number, number>();
    for (let i = 0; i < 1200; i++) {
      const [method, path] = endpoints();
      const withBody = method !== 'GET' && method !== 'DELETE';
      const url = path + (rand() < 0.5 ? queries() : '');
      const body = withBody ? bodies() : undefined;
      const auth = rand() < 0.1 ? pick(['', 'Bearer', 'Basic x', `Bearer ${'a'.repeat(10000)}`]) : `Bearer ${stack.token}`;
      const res = await fetch(`${stack.baseUrl}${url}`, {
        method,
        headers: { authorization: auth, ...(withBody ? { 'content-type': pick(contentTypes) } : {}) },
        body,
      });
      await res.arrayBuffer();
      counts.set(res.status, (counts.get(res.status) ?? 0) + 1);
      if (res.status >= 500) fiveHundreds.push(`${method} ${url} ${body?.slice(0, 200)} → ${res.status}`);
    }
    console.log(`fuzz: ${[...counts].sort().map(([s, n]) => `${s}×${n}`).join(' ')}`);
    expect(fiveHundreds).toEqual([]);
    expect((await fetch(`${stack.baseUrl}/health`)).status).toBe(200);
    const after = await stack.json('GET', '/jobs?limit=200');
    // Only refused requests were sent, beyond the one valid job (which the fuzz may have cancelled or deleted).
    expect(after.body.jobs.length).toBeLessThanOrEqual(before.body.jobs.length);
    const tokens = await stack.json('GET', '/tokens');
    expect(tokens.body.tokens).toEqual([]);
    await waitFor('the API to still answer', async () => ((await fetch(`${stack.baseUrl}/ready`)).ok ? true : undefined));
  }, 120000);
});
