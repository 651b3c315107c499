import Redis from 'ioredis';
import { createHash, randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { DataSource } from 'typeorm';
import { readEvents } from '../support/sse';
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
    // The queue entry completes once the runner has also removed the container, a moment after the job shows terminal.
    const text = await waitFor('the queue entry to complete', async () => {
      const page = await fetch(`${stack.baseUrl}/admin/queues/api/queues?activeQueue=jobs&status=completed`, { headers: { authorization: basic } });
      expect(page.status).toBe(200);
      const body = await page.text();
      return body.includes(job.id) ? body : undefined;
    }, 10000, 100);
    expect(text).toContain(job.id);
    expect(text).not.toContain(secret);
  });

  it('refuses a token in the URL with 401 on every endpoint, even a valid admin token', async () => {
    const job = (await stack.json('POST', '/jobs', { image: TEST_IMAGE, command: ['echo', 'x'] })).body;
    await stack.waitTerminal(job.id);
    for (const path of ['/jobs', `/jobs/${job.id}`, `/jobs/${job.id}/output`, `/jobs/${job.id}/logs`, `/jobs/${job.id}/logs/stream`, `/jobs/${job.id}/logs/download`, '/tokens']) {
      const res = await fetch(`${stack.baseUrl}${path}?access_token=${encodeURIComponent(stack.token)}`);
      const body = (await res.json()) as { error: string };
      expect([path, res.status, body.error, res.headers.get('www-authenticate')]).toEqual([path, 401, 'unauthorized', 'Bearer']);
    }
    // Not even beside a valid header: the URL is refused, not ignored.
    const both = await stack.request('GET', `/jobs?access_token=${encodeURIComponent(stack.token)}`);
    expect(both.status).toBe(401);
  });

  it('a log ticket is short-lived, opens only the stream and download of its own job, and only for its tenant', async () => {
    const a = (await stack.json('POST', '/tokens', { tenant: 'tix-a', name: 'a' })).body.token;
    const b = (await stack.json('POST', '/tokens', { tenant: 'tix-b', name: 'b' })).body.token;
    const job = (await as(a).json('POST', '/jobs', { image: TEST_IMAGE, command: ['echo', 'ticketed line'] })).body;
    const other = (await as(a).json('POST', '/jobs', { image: TEST_IMAGE, command: ['echo', 'other job'] })).body;
    await stack.waitTerminal(job.id);
    await stack.waitTerminal(other.id);

    const issued = await as(a).json('POST', `/jobs/${job.id}/logs/ticket`);
    expect(issued.status).toBe(201);
    expect(Object.keys(issued.body).sort()).toEqual(['expires_at', 'ticket']);
    const ticket: string = issued.body.ticket;
    const ttlMs = Date.parse(issued.body.expires_at) - Date.now();
    expect(ttlMs).toBeGreaterThan(60 * 1000);
    expect(ttlMs).toBeLessThanOrEqual(10 * 60 * 1000);
    // Another tenant cannot get one for this job; a ticket cannot buy a ticket.
    expect((await as(b).json('POST', `/jobs/${job.id}/logs/ticket`)).status).toBe(404);
    expect((await fetch(`${stack.baseUrl}/jobs/${job.id}/logs/ticket?ticket=${ticket}`, { method: 'POST' })).status).toBe(401);

    const download = await fetch(`${stack.baseUrl}/jobs/${job.id}/logs/download?ticket=${ticket}`);
    expect(download.status).toBe(200);
    expect(await download.text()).toContain('ticketed line');
    const events = await readEvents(`${stack.baseUrl}/jobs/${job.id}/logs/stream?ticket=${ticket}`, {}, (e) => e.event === 'end');
    expect(events.map((e) => e.event)).toContain('end');
    expect(events.some((e) => e.data.includes('ticketed line'))).toBe(true);

    // Every other endpoint, and the same endpoints of another job, refuse it.
    for (const [method, path] of [
      ['GET', `/jobs/${job.id}`],
      ['GET', `/jobs/${job.id}/output`],
      ['GET', `/jobs/${job.id}/logs`],
      ['POST', `/jobs/${job.id}/cancel`],
      ['DELETE', `/jobs/${job.id}`],
      ['GET', '/jobs'],
      ['POST', '/jobs'],
      ['GET', `/jobs/${other.id}/logs/stream`],
      ['GET', `/jobs/${other.id}/logs/download`],
      ['GET', `/jobs/${job.id.toUpperCase()}/logs/download`],
    ]) {
      const res = await fetch(`${stack.baseUrl}${path}?ticket=${ticket}`, { method });
      expect([method, path, res.status, res.headers.get('www-authenticate')]).toEqual([method, path, 401, 'Bearer']);
    }
    expect((await fetch(`${stack.baseUrl}/jobs/${job.id}/logs/download?ticket=fpt_${'A'.repeat(43)}`)).status).toBe(401);

    // Kept in Redis under its digest (never the ticket itself) with a TTL of minutes; gone once expired.
    const redis = new Redis(stack.world.env.REDIS_URL);
    try {
      const key = `${stack.world.redisPrefix}:ticket:${createHash('sha256').update(ticket).digest('hex')}`;
      const ttl = await redis.ttl(key);
      expect(ttl).toBeGreaterThan(60);
      expect(ttl).toBeLessThanOrEqual(600);
      expect((await redis.keys(`${stack.world.redisPrefix}*`)).some((k) => k.includes(ticket))).toBe(false);
      await redis.del(key);
    } finally {
      redis.disconnect();
    }
    expect((await fetch(`${stack.baseUrl}/jobs/${job.id}/logs/download?ticket=${ticket}`)).status).toBe(401);

    // A ticket dies with the token it was issued with: revoking the token ends it at once.
    const c = (await stack.json('POST', '/tokens', { tenant: 'tix-a', name: 'c' })).body;
    const fresh = (await as(c.token).json('POST', `/jobs/${job.id}/logs/ticket`)).body.ticket as string;
    expect((await fetch(`${stack.baseUrl}/jobs/${job.id}/logs/download?ticket=${fresh}`)).status).toBe(200);
    expect((await stack.request('DELETE', `/tokens/${c.id}`)).status).toBe(204);
    const revoked = await fetch(`${stack.baseUrl}/jobs/${job.id}/logs/download?ticket=${fresh}`);
    expect(revoked.status).toBe(401);
    expect(((await revoked.json()) as { message: string }).message).toMatch(/revoked/);
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
    // The limit counts per wall-clock minute: start where the whole test fits in one window.
    await waitFor('a minute with 15 s left in it', async () => (Date.now() % 60_000 <= 45_000 ? true : undefined), 20_000, 200);
    const other = (await stack.json('POST', '/tokens', { tenant: 'other', name: 'o' })).body.token;
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    let expectedRetryAfter = 0;
    for (let i = 0; i < 25; i++) {
      const res = await stack.request('GET', '/jobs');
      statuses.push(res.status);
      if (res.status === 429) {
        retryAfter = res.headers.get('retry-after');
        // The seconds left in this minute's window, as the server saw them.
        expectedRetryAfter = 60 - Math.floor((Date.now() % 60_000) / 1000);
        expect(((await res.json()) as { error: string }).error).toBe('rate_limited');
      }
    }
    // The token creation above was the first request of the admin's window.
    expect(statuses.filter((s) => s === 200).length).toBe(19);
    expect(statuses.slice(19).every((s) => s === 429)).toBe(true);
    // Read on our side just after the answer: the same second, or the next one.
    expect(Number(retryAfter) - expectedRetryAfter).toBeGreaterThanOrEqual(0);
    expect(Number(retryAfter) - expectedRetryAfter).toBeLessThanOrEqual(1);
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

/** Sends raw bytes as an HTTP request (any method, path, header bytes) and returns the status code. */
function rawRequest(port: number, head: Buffer, timeoutMs = 10000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => (socket.destroy(), reject(new Error(`no answer in ${timeoutMs} ms to ${head.toString('latin1').replace(/Bearer \S+/g, 'Bearer …').replace(/x{100,}/, (x) => `x×${x.length}`).slice(0, 600)}`))), timeoutMs);
    const isHead = head.subarray(0, 5).toString() === 'HEAD ';
    // Done when the whole response is in (an SSE answer keeps the connection open after its end).
    const complete = (all: Buffer) => {
      const at = all.indexOf('\r\n\r\n');
      if (at === -1) return false;
      const headers = all.subarray(0, at).toString('latin1').toLowerCase();
      const length = /\r\ncontent-length: *(\d+)/.exec(headers);
      if (isHead || /^http\/1\.[01] (1\d\d|204|304)/.test(headers)) return true;
      if (length) return all.length - at - 4 >= Number(length[1]);
      return /\r\ntransfer-encoding: *chunked/.test(headers) && all.subarray(-5).toString() === '0\r\n\r\n';
    };
    socket.on('data', (c) => {
      chunks.push(c);
      if (complete(Buffer.concat(chunks))) socket.destroy();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      // A server may drop a request it cannot parse without an answer: status 0.
      resolve({ status: m ? Number(m[1]) : 0, body: text });
    });
    socket.write(head);
  });
}

describe('HTTP conventions and edges', () => {
  let stack: Stack;
  beforeAll(async () => (stack = await Stack.start(['api'], { API_RATE_LIMIT_PER_MINUTE: '100000' })), 60000);
  afterAll(() => stack?.stop());

  it('401 says WWW-Authenticate: Bearer', async () => {
    for (const auth of [undefined, 'Bearer nope-nope-nope-nope', 'Basic eDp5']) {
      const res = await fetch(`${stack.baseUrl}/jobs`, { headers: auth ? { authorization: auth } : {} });
      expect([auth, res.status, res.headers.get('www-authenticate')]).toEqual([auth, 401, 'Bearer']);
    }
  });

  it('a known path with a wrong method is 405 with Allow; an unknown path stays 404', async () => {
    const id = randomUUID();
    for (const [method, path, allow] of [
      ['PUT', '/jobs', 'GET, HEAD, POST'],
      ['PATCH', `/jobs/${id}`, 'DELETE, GET, HEAD'],
      ['GET', `/jobs/${id}/cancel`, 'POST'],
      ['DELETE', `/jobs/${id}/logs/stream`, 'GET, HEAD'],
      ['GET', `/jobs/${id}/logs/ticket`, 'POST'],
      ['PUT', '/tokens', 'GET, HEAD, POST'],
      ['POST', '/health', 'GET, HEAD'],
    ]) {
      const res = await stack.request(method, path);
      const body = (await res.json()) as { error: string };
      expect([method, path, res.status, res.headers.get('allow'), body.error]).toEqual([method, path, 405, allow, 'method_not_allowed']);
    }
    const unknown = await stack.request('GET', '/nowhere');
    expect(unknown.status).toBe(404);
  });

  it('a body that is not JSON is 415; an empty POST needs no content type', async () => {
    for (const [type, body] of [['text/plain', '{"image":"x"}'], ['application/x-www-form-urlencoded', 'image=x'], ['multipart/form-data; boundary=x', '--x--']]) {
      const res = await stack.request('POST', '/jobs', body, { 'content-type': type });
      expect([type, res.status, ((await res.json()) as { error: string }).error]).toEqual([type, 415, 'unsupported_media_type']);
    }
    const job = (await stack.json('POST', '/jobs', { image: TEST_IMAGE, command: ['true'] })).body;
    const cancel = await fetch(`${stack.baseUrl}/jobs/${job.id}/cancel`, { method: 'POST', headers: { authorization: `Bearer ${stack.token}` } });
    expect(cancel.status).toBe(202);
  });

  it('a crafted cursor or a malformed token id is 400/404, never 500', async () => {
    const cursor = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
    for (const c of [
      cursor(['1', '------------------------------------']),
      cursor(['2020-01-01T00:00:00.000Z', '------------------------------------']),
      cursor(['1', randomUUID()]),
      cursor(['+275760-09-13T00:00:00.000Z', randomUUID()]),
      cursor([20200101, randomUUID()]),
      cursor(['2020-01-01T00:00:00.000Z']),
      cursor({}),
      cursor(null),
    ]) {
      const res = await stack.request('GET', `/jobs?cursor=${c}`);
      expect([c, res.status]).toEqual([c, 400]);
    }
    for (const id of ['------------------------------------', 'ffffffff-ffff-ffff-ffff-ffffffffffff', 'gggggggg-gggg-gggg-gggg-gggggggggggg', '0'.repeat(36)]) {
      const res = await stack.request('DELETE', `/tokens/${id}`);
      expect([id, res.status]).toEqual([id, 404]);
    }
  });

  it('/ready says which service is down, not why', async () => {
    const ready = await fetch(`${stack.baseUrl}/ready`);
    expect(await ready.json()).toEqual({ status: 'ready', checks: { redis: 'up', postgres: 'up' } });
  });

  it('never logs a generated admin token: nothing in the API output opens the API', async () => {
    const bare = await Stack.start(['api'], { FLASHPODS_ADMIN_TOKEN: '' });
    try {
      const output = bare.logsOf('api');
      expect(output).toContain('FLASHPODS_ADMIN_TOKEN is not set');
      const words = new Set(output.match(/[A-Za-z0-9_+/=-]{16,}/g) ?? []);
      for (const w of words) {
        const res = await fetch(`${bare.baseUrl}/jobs`, { headers: { authorization: `Bearer ${w}` } });
        expect([w, res.status]).toEqual([w, 401]);
      }
    } finally {
      await bare.stop();
    }
  });
});

describe('an aborted download closes its file', () => {
  let stack: Stack;
  beforeAll(async () => (stack = await Stack.start(['api', 'runner', 'persister'])), 60000);
  // Open issue (not this test's subject): after these 200 aborted downloads the API does not exit
  // on SIGTERM (measured: still alive 15 s later), so it is killed; the other services drain.
  afterAll(async () => {
    await stack?.stopService('api', 'SIGKILL');
    await stack?.stop();
  }, 60000);

  it('200 downloads aborted after the first chunk leave no descriptor open in the API', async () => {
    const job = (await stack.json('POST', '/jobs', { image: TEST_IMAGE, command: ['sh', '-c', 'yes 0123456789abcdefghijklmnopqrstuvwxyz | head -n 200000'] })).body;
    await stack.waitTerminal(job.id);
    const pid = stack.pidOf('api')!;
    const logPath = join(stack.world.logDir, `${job.id}.log`);
    const fds = () => readdirSync(`/proc/${pid}/fd`).map((fd) => { try { return readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { return ''; } });
    const before = fds().length;
    for (let i = 0; i < 200; i++) {
      const controller = new AbortController();
      const res = await fetch(`${stack.baseUrl}/jobs/${job.id}/logs/download`, { headers: { authorization: `Bearer ${stack.token}` }, signal: controller.signal });
      expect(res.status).toBe(200);
      await res.body!.getReader().read();
      controller.abort();
    }
    const open = await waitFor('the API to close the aborted downloads', async () => {
      const files = fds().filter((l) => l === logPath).length;
      return files === 0 ? files : undefined;
    }, 10000, 200).catch(() => fds().filter((l) => l === logPath).length);
    const after = fds().length;
    console.log(`aborted downloads: log file descriptors open after 200 aborts: ${open}; API descriptors ${before} before, ${after} after`);
    expect(open).toBe(0);
    expect(after).toBeLessThan(before + 20);
  }, 120000);
});

describe('fuzz, wider: every query parameter, odd headers, methods and encoded traversal', () => {
  let stack: Stack;
  let canaryDir: string;
  const canary = `canary-${randomUUID()}`;
  const canaryId = randomUUID();
  beforeAll(async () => {
    stack = await Stack.start(['api'], { API_RATE_LIMIT_PER_MINUTE: '100000000' });
    // A log-shaped file just outside LOG_DIR, which no path may reach.
    canaryDir = dirname(stack.world.logDir);
    writeFileSync(join(canaryDir, `${canaryId}.log`), canary);
    mkdirSync(join(stack.world.logDir, 'sub'), { recursive: true });
  }, 60000);
  afterAll(async () => {
    rmSync(join(canaryDir, `${canaryId}.log`), { force: true });
    await stack?.stop();
  });

  it('answers without a 5xx, reads no file outside LOG_DIR, and stays up', async () => {
    const port = Number(new URL(stack.baseUrl).port);
    // A fresh job per endpoint (the fuzz cancels and deletes), cancelled so that its stream ends.
    const fresh = async () => {
      const id = (await stack.json('POST', '/jobs', { image: TEST_IMAGE, command: ['true'] })).body.id as string;
      await stack.request('POST', `/jobs/${id}/cancel`);
      return { id, ticket: (await stack.json('POST', `/jobs/${id}/logs/ticket`)).body.ticket as string };
    };
    let { id: valid, ticket } = await fresh();
    const ids = () => [valid, `..%2f${canaryId}`, `..%2f..%2f${canaryId}`, `%2e%2e%2f${canaryId}`, `${valid}%00`, `%00`, `..%5c${canaryId}`, `${canaryId}%2f..%2f..%2f${canaryId}`, `sub%2f..%2f..%2f${canaryId}`, '%ff%fe', '%', '%zz'];
    const values = ['', '-1', '0', '1', '1e309', 'x', '%00', '%ff', '%E2%82%AC', 'a'.repeat(5000), '..%2f..%2fetc%2fpasswd', "'%20OR%201=1", '[]', '{}', '9007199254740993', 'NaN'];
    const endpoints: [string, string, string[]][] = [
      ['GET', '/jobs', ['status', 'label', 'limit', 'cursor']],
      ['POST', '/jobs', []],
      ['GET', '/jobs/:id', []],
      ['POST', '/jobs/:id/cancel', []],
      ['DELETE', '/jobs/:id', []],
      ['GET', '/jobs/:id/output', ['tail']],
      ['GET', '/jobs/:id/logs', ['after_seq', 'limit', 'stream', 'level', 'since', 'q']],
      ['GET', '/jobs/:id/logs/stream', ['after_seq', 'ticket']],
      ['GET', '/jobs/:id/logs/download', ['ticket']],
      ['POST', '/jobs/:id/logs/ticket', []],
      ['GET', '/tokens', []],
      ['POST', '/tokens', []],
      ['DELETE', '/tokens/:id', []],
      ['GET', '/ui/:id', []],
      ['GET', '/health', []],
      ['GET', '/ready', []],
      ['GET', '/metrics', []],
      ['GET', '/admin/queues/:id', []],
    ];
    const table = new Map<string, Map<number, number>>();
    const bad: string[] = [];
    const send = async (label: string, head: string | Buffer) => {
      const r = await rawRequest(port, Buffer.isBuffer(head) ? head : Buffer.from(head, 'latin1'));
      const row = table.get(label) ?? new Map<number, number>();
      row.set(r.status, (row.get(r.status) ?? 0) + 1);
      table.set(label, row);
      if (r.status >= 500 || r.status === 0) bad.push(`${r.status} ← ${(Buffer.isBuffer(head) ? head.toString('latin1') : head).slice(0, 200)}`);
      if (r.body.includes(canary)) bad.push(`canary read ← ${String(head).slice(0, 200)}`);
      if (/root:x:0:0/.test(r.body)) bad.push(`/etc/passwd read ← ${String(head).slice(0, 200)}`);
    };
    const auth = `Authorization: Bearer ${stack.token}\r\n`;
    const req = (method: string, path: string, headers = auth, body = '') =>
      `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n${headers}${body ? `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` : ''}\r\n${body}`;
    const body = (m: string) => (m === 'POST' ? '{}' : '');

    for (const [method, pattern, params] of endpoints) {
      const label = `${method} ${pattern}`;
      ({ id: valid, ticket } = await fresh());
      for (const id of pattern.includes(':id') ? ids() : [''])
        await send(label, req(method, pattern.replace(':id', id), auth, body(method)));
      // Every query parameter with every odd value, alone, repeated, and as a ticket.
      const path = pattern.replace(':id', valid);
      for (const p of [...params, 'access_token', 'unknown'])
        for (const v of values) {
          await send(label, req(method, `${path}?${p}=${v}`, auth, body(method)));
          await send(label, req(method, `${path}?${p}=${v}&${p}=${v}`, auth, body(method)));
        }
      await send(label, req(method, `${path}?ticket=${ticket}`, '', body(method)));
      // Odd headers: huge, duplicated, non-ASCII, odd Last-Event-ID.
      await send(label, req(method, path, `${auth}X-Big: ${'x'.repeat(20000)}\r\n`, body(method)));
      await send(label, req(method, path, `${auth}${auth}`, body(method)));
      await send(label, req(method, path, `Authorization: Bearer a\r\nAuthorization: Bearer b\r\n`, body(method)));
      await send(label, Buffer.from(req(method, path, `${auth}X-Name: ünïcødé €\r\nLast-Event-ID: 😀\r\n`, body(method)), 'utf8'));
      await send(label, Buffer.from(req(method, path, `Authorization: Bearer ${stack.token}ü\r\n`), 'utf8'));
      await send(label, req(method, path, `${auth}Last-Event-ID: -1\r\n`, body(method)));
      // Every method on the path.
      for (const m of ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'PROPFIND', 'BREW'])
        await send(`${label} (any method)`, req(m, path, auth, body(m)));
    }
    // Traversal with the whole path encoded, outside any route.
    for (const p of [`/..%2f..%2f${canaryId}.log`, `/%2e%2e/%2e%2e/${canaryId}.log`, `/ui/..%2f..%2f..%2fpackage.json`, `/ui/%2e%2e%2fassets%2fapp.js`, '/%00', `/jobs/${valid}/logs/download/..%2f..%2f${canaryId}`, '/admin/queues/static/..%2f..%2f..%2fpackage.json', '//etc/passwd', '/ui/..%5c..%5cpackage.json'])
      await send('traversal', req('GET', p));

    const statuses = [...new Set([...table.values()].flatMap((r) => [...r.keys()]))].sort((a, b) => a - b);
    const lines = [`${'endpoint'.padEnd(40)} ${statuses.map((s) => String(s).padStart(5)).join(' ')}`];
    for (const [label, row] of table) lines.push(`${label.padEnd(40)} ${statuses.map((s) => String(row.get(s) ?? '').padStart(5)).join(' ')}`);
    console.log(`fuzz, wider: ${[...table.values()].reduce((n, r) => n + [...r.values()].reduce((a, b) => a + b, 0), 0)} requests\n${lines.join('\n')}`);
    expect(bad).toEqual([]);
    expect((await fetch(`${stack.baseUrl}/health`)).status).toBe(200);
    expect((await stack.request('GET', '/jobs')).status).toBe(200);
  }, 300000);
});
