import { createServer, IncomingMessage, request, Server, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { storage } from 'nestjs-pino/storage';
import { loadConfig } from './flashpods.config';
import { requestIdOf, requestLogger } from './request-logger';
import { createServiceLogger } from './service-logger';

const JOB = '6befaeee-c39d-47d2-bd54-3e02cc8d8824';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** An HTTP server behind `requestLogger`, logging JSON lines into `lines`. */
async function serve(level: string, handler: Handler) {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l));
      done();
    },
  });
  const logger = createServiceLogger(loadConfig({ LOG_FORMAT: 'json', LOG_LEVEL: level }), 'api', sink);
  const log = requestLogger(logger);
  const server: Server = createServer((req, res) => log(req, res, () => handler(req, res)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { lines, base, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/** Lines are written when the response ends: after the client has its answer, so wait for them. */
async function until(lines: unknown[], n: number): Promise<void> {
  for (const deadline = Date.now() + 2000; lines.length < n && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 5));
}

const answer =
  (status: number): Handler =>
  (_req, res) => {
    res.statusCode = status;
    res.end('{}');
  };

describe('requestLogger', () => {
  it('logs one debug line per answered request: reqId, method, redacted URL, job_id, status, duration; no headers', async () => {
    const s = await serve('debug', answer(200));
    try {
      await fetch(`${s.base}/jobs/${JOB.toUpperCase()}/logs/stream?ticket=secret.value&after_seq=3`, {
        headers: { authorization: 'Bearer fp_secret', 'x-request-id': 'abc-1' },
      });
      await until(s.lines, 1);
      expect(s.lines).toHaveLength(1);
      const line = s.lines[0];
      expect(line).toMatchObject({
        level: 'debug',
        service: 'api',
        reqId: 'abc-1',
        req: { id: 'abc-1', method: 'GET', url: `/jobs/${JOB.toUpperCase()}/logs/stream?ticket=[REDACTED]&after_seq=3` },
        job_id: JOB,
        res: { statusCode: 200 },
      });
      expect(typeof line.responseTime).toBe('number');
      expect(line.msg).toMatch(new RegExp(`^GET /jobs/${JOB.toUpperCase()}/logs/stream\\?ticket=\\[REDACTED\\]&after_seq=3 200 in \\d+ ms$`));
      expect(JSON.stringify(line)).not.toContain('secret');
      expect(Object.keys(line.req as object).sort()).toEqual(['id', 'method', 'url']);
    } finally {
      await s.close();
    }
  });

  it('logs a 5xx at error, with the error, even when debug is off; a 2xx then writes nothing', async () => {
    const s = await serve('info', (req, res) => answer(req.url === '/jobs' ? 503 : 200)(req, res));
    try {
      await fetch(`${s.base}/jobs?status=running`);
      await fetch(`${s.base}/jobs`);
      await until(s.lines, 1);
      await new Promise((r) => setTimeout(r, 50));
      expect(s.lines).toHaveLength(1);
      expect(s.lines[0]).toMatchObject({
        level: 'error',
        req: { method: 'GET', url: '/jobs' },
        res: { statusCode: 503 },
        err: { message: 'failed with status code 503' },
        msg: 'GET /jobs 503: failed with status code 503',
      });
      expect(s.lines[0]).not.toHaveProperty('job_id');
      expect(s.lines[0].reqId).toMatch(UUID);
    } finally {
      await s.close();
    }
  });

  it('does not log health, readiness and metrics probes', async () => {
    const s = await serve('debug', answer(200));
    try {
      for (const path of ['/health', '/ready', '/metrics', '/health?x=1', '/jobs']) await fetch(`${s.base}${path}`);
      await until(s.lines, 1);
      await new Promise((r) => setTimeout(r, 50));
      expect(s.lines.map((l) => (l.req as { url: string }).url)).toEqual(['/jobs']);
    } finally {
      await s.close();
    }
  });

  it('gives the lines logged while a request is handled its reqId, and none to lines outside it', async () => {
    const s = await serve('info', (req, res) => {
      // What nestjs-pino's PinoLogger does for every Nest logger's line.
      storage.getStore()!.logger.warn('dependency unavailable');
      setImmediate(() => {
        storage.getStore()!.logger.info('later, same request');
        answer(200)(req, res);
      });
    });
    try {
      await fetch(`${s.base}/jobs`, { headers: { 'x-request-id': 'r-42' } });
      await until(s.lines, 2);
      expect(s.lines.map((l) => [l.msg, l.reqId])).toEqual([
        ['dependency unavailable', 'r-42'],
        ['later, same request', 'r-42'],
      ]);
      expect(storage.getStore()).toBeUndefined();
    } finally {
      await s.close();
    }
  });

  it('logs a request whose client went away before the answer once, with the status it had', async () => {
    let ended!: () => void;
    const closed = new Promise<void>((r) => (ended = r));
    const s = await serve('debug', (_req, res) => res.once('close', ended));
    try {
      const client = request(`${s.base}/jobs/${JOB}`);
      client.on('error', () => undefined);
      client.end();
      await new Promise((r) => setTimeout(r, 50));
      client.destroy();
      await closed;
      await until(s.lines, 1);
      await new Promise((r) => setTimeout(r, 50));
      expect(s.lines).toHaveLength(1);
      expect(s.lines[0]).toMatchObject({ level: 'debug', job_id: JOB, res: { statusCode: 200 } });
    } finally {
      await s.close();
    }
  });
});

describe('requestIdOf', () => {
  const req = (id?: string | string[]) => ({ headers: id === undefined ? {} : { 'x-request-id': id } }) as unknown as IncomingMessage;

  it('takes a plain X-Request-Id of at most 128 characters; anything else gets a new UUID', () => {
    expect(requestIdOf(req('trace.1_A-b'))).toBe('trace.1_A-b');
    expect(requestIdOf(req('x'.repeat(128)))).toBe('x'.repeat(128));
    for (const bad of ['x'.repeat(129), 'a b', 'a\nb', '', ['a', 'b']]) expect(requestIdOf(req(bad as string))).toMatch(UUID);
    expect(requestIdOf(req())).toMatch(UUID);
    expect(requestIdOf(req())).not.toBe(requestIdOf(req()));
  });
});
