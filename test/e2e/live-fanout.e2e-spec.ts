import Redis from 'ioredis';
import { readFileSync } from 'node:fs';
import { connect, Socket } from 'node:net';
import { gate, release } from '../support/gate';
import { connectionsTo } from '../support/proc-net';
import { readEvents, SseEvent } from '../support/sse';
import { Stack } from '../support/stack';
import { TEST_IMAGE, waitFor } from '../support/test-env';

/** The body of a chunked HTTP/1.1 response, read whole from a socket. */
function dechunk(raw: Buffer): string {
  let at = raw.indexOf('\r\n\r\n') + 4;
  const parts: Buffer[] = [];
  for (;;) {
    const eol = raw.indexOf('\r\n', at);
    if (eol === -1) break;
    const size = parseInt(raw.subarray(at, eol).toString(), 16);
    if (!(size > 0) || eol + 2 + size > raw.length) break;
    parts.push(raw.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
  return Buffer.concat(parts).toString('utf8');
}

const seqsOf = (events: SseEvent[]) => events.filter((e) => e.event === 'line').map((e) => JSON.parse(e.data).seq as number);
const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

describe('live logs: one reader per job, many viewers', () => {
  let stack: Stack;
  let redis: Redis;
  let redisPort: number;
  beforeAll(async () => {
    stack = await Stack.start(['api', 'runner', 'persister']);
    redis = new Redis(stack.world.env.REDIS_URL);
    redisPort = Number(new URL(stack.world.env.REDIS_URL).port || 6379);
  }, 60000);
  afterAll(async () => {
    redis?.disconnect();
    await stack?.stop();
  });
  const auth = () => ({ authorization: `Bearer ${stack.token}` });

  it('100 SSE clients on one job all get every line once; the API holds the same Redis connections for 1 client as for 100', async () => {
    const job = (
      await stack.json('POST', '/jobs', {
        image: TEST_IMAGE,
        // Half its lines, then it waits for /tmp/go (made by the test once it has looked at the
        // running job), then the rest: running while looked at, however slow the machine.
        command: [
          'sh',
          '-c',
          `i=1; while [ $i -le 3000 ]; do echo "line $i"; [ $i -eq 1500 ] && ${gate()}; [ $((i % 100)) -eq 0 ] && sleep 0.25; i=$((i+1)); done`,
        ],
      })
    ).body;
    const url = `${stack.baseUrl}/jobs/${job.id}/logs/stream`;
    const api = stack.pidOf('api')!;
    const liveReaders = async () =>
      (await redis.client('LIST') as string).split('\n').filter((l) => l.includes(` name=flashpods:${stack.world.redisPrefix}:api-live `)).length;

    const firstLines: number[] = [];
    const clients: Promise<SseEvent[]>[] = [];
    const open = () => {
      const i = clients.length;
      firstLines[i] = 0;
      clients.push(readEvents(url, auth(), (e) => (e.event === 'line' && firstLines[i]++, e.event === 'end'), 60000));
    };
    open();
    await waitFor('the first client to receive lines', async () => (firstLines[0] > 0 ? true : undefined), 30000, 20);
    const withOne = connectionsTo(api, redisPort);
    expect(await liveReaders()).toBe(1);
    for (let i = 1; i < 100; i++) open();
    await waitFor('all 100 clients to receive lines', async () => (firstLines.every((n) => n > 0) ? true : undefined), 30000, 20);
    const withHundred = connectionsTo(api, redisPort);
    // Held at its gate, the job is running; Postgres says so once the persister has stored its status
    // entry, which may come after the viewers, who read the stream, have their first lines.
    await waitFor('the job to be stored as running', async () => ((await stack.json('GET', `/jobs/${job.id}`)).body.status === 'running' ? true : undefined), 30000, 50);
    expect(await liveReaders()).toBe(1);
    expect(withHundred).toBe(withOne);
    await release(job.id);

    const all = await Promise.all(clients);
    const stored = (await stack.json('GET', `/jobs/${job.id}`)).body;
    expect(stored.status).toBe('completed');
    for (const events of all) {
      expect(seqsOf(events)).toEqual(range(stored.log.lines));
      const end = events[events.length - 1];
      expect([end.event, JSON.parse(end.data).status]).toEqual(['end', 'completed']);
    }
    const texts = all[57].filter((e) => e.event === 'line').map((e) => JSON.parse(e.data).line).filter((l: string) => l.startsWith('line '));
    expect(texts).toEqual(range(3000).map((i) => `line ${i}`));
    // Nothing of the clients stays: no feed, no client, no reader reading.
    await waitFor('the feeds to be gone', async () => {
      const m = await (await fetch(`${stack.baseUrl}/metrics`)).text();
      return /^flashpods_api_sse_clients 0$/m.test(m) && /^flashpods_api_sse_feeds 0$/m.test(m) ? true : undefined;
    }, 10000, 100);
  }, 120000);

  it('a stalled client does not hold the others back; once it reads again it gets every line once, from the file', async () => {
    const bursts = 20;
    const perBurst = 2000;
    const lines = bursts * perBurst;
    const slowClients = async () => {
      const m = await (await fetch(`${stack.baseUrl}/metrics`)).text();
      return [...m.matchAll(/^flashpods_api_sse_slow_clients_total\{reason="(?:buffer|trimmed)"\} (\d+)$/gm)].reduce((n, x) => n + Number(x[1]), 0);
    };
    // Counted from here: a viewer of an earlier test that fell behind does not count for this one.
    const slowBefore = await slowClients();
    const job = (
      await stack.json('POST', '/jobs', {
        image: TEST_IMAGE,
        // 40,000 lines of 300 bytes in 20 bursts: some 16 MB of events per client, far more than
        // the kernel's socket buffers hold for the one that reads nothing. After burst k (but the
        // last) the job waits at gate go-k, which the test opens only once every fast client has
        // all of burst k: the job cannot go on unless the stalled client lets the others keep up.
        command: [
          'sh',
          '-c',
          `L="$(printf '%0300d' 7)"; k=1; while [ $k -le ${bursts} ]; do yes "$L" | head -n ${perBurst}; [ $k -lt ${bursts} ] && ${gate('go-$k')}; k=$((k+1)); done`,
        ],
      })
    ).body;
    const url = `${stack.baseUrl}/jobs/${job.id}/logs/stream`;
    // The stalled client: it sends its request and reads nothing, so its socket fills and stays full.
    const { hostname, port, pathname } = new URL(url);
    const stalled: Socket = connect(Number(port), hostname);
    await new Promise<void>((resolve) => stalled.once('connect', () => resolve()));
    stalled.pause();
    stalled.write(`GET ${pathname} HTTP/1.1\r\nHost: ${hostname}\r\nAuthorization: Bearer ${stack.token}\r\nAccept: text/event-stream\r\n\r\n`);
    const received = [0, 0, 0, 0, 0];
    const fast = received.map((_, i) =>
      readEvents(url, auth(), (e) => {
        if (e.event === 'line' && JSON.parse(e.data).stream === 'stdout') received[i]++;
        return e.event === 'end';
      }, 110000),
    );
    for (let k = 1; k < bursts; k++) {
      // Lines arrive in order (asserted below): a client with k bursts' worth of lines has all of burst k.
      await waitFor(`every fast client to receive burst ${k}`, async () => (received.every((n) => n >= k * perBurst) ? true : undefined), 30000, 20);
      // From half-way on (8 MB sent to it), the stalled client has been counted as behind: the
      // bursts after that reach the others although it still reads nothing.
      if (k >= bursts / 2) await waitFor('the stalled client to be counted as slow', async () => ((await slowClients()) > slowBefore ? true : undefined), 10000, 50);
      await release(job.id, `go-${k}`);
    }
    const fastEvents = await Promise.all(fast);
    const stored = (await stack.json('GET', `/jobs/${job.id}`)).body;
    expect(stored).toMatchObject({ status: 'completed', log: { lines: expect.any(Number) } });
    for (const events of fastEvents) expect(seqsOf(events)).toEqual(range(stored.log.lines));
    expect(received).toEqual([lines, lines, lines, lines, lines]);
    const metrics = await (await fetch(`${stack.baseUrl}/metrics`)).text();
    // It fell behind: its socket full (`buffer`), or, on a loaded machine, the stream trimmed before the feed read it (`trimmed`).
    const slow = [...metrics.matchAll(/^flashpods_api_sse_slow_clients_total\{reason="(?:buffer|trimmed)"\} (\d+)$/gm)].map((m) => Number(m[1]));
    expect(slow).toHaveLength(2);
    expect(slow[0] + slow[1]).toBeGreaterThanOrEqual(1);
    // What waits for the stalled client in the API is its buffer and one batch, not its 16 MB.
    expect(Number(/^flashpods_api_sse_clients (\d+)$/m.exec(metrics)![1])).toBe(1);
    expect(Number(/^flashpods_api_sse_buffered_bytes (\d+)$/m.exec(metrics)![1])).toBeLessThan(1.5 * 1024 * 1024);
    // And the process stayed small.
    const rssMb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${stack.pidOf('api')}/status`, 'utf8'))![1]) / 1024;
    expect(rssMb).toBeLessThan(300);

    // It reads again: every line once, in order, then `end`.
    const raw: Buffer[] = [];
    let got = '';
    stalled.on('data', (d: Buffer) => {
      raw.push(d);
      if (d.includes('event: end')) got = 'end';
    });
    stalled.resume();
    await waitFor('the stalled client to catch up', async () => (got === 'end' ? true : undefined), 60000, 100);
    stalled.destroy();
    const seqs = [...dechunk(Buffer.concat(raw)).matchAll(/^id: (\d+)\nevent: line$/gm)].map((m) => Number(m[1]));
    expect(seqs).toEqual(range(stored.log.lines));
  }, 240000);

  it('HEAD on a live stream answers its headers at once, with no body', async () => {
    const job = (await stack.json('POST', '/jobs', { image: TEST_IMAGE, command: ['sh', '-c', 'echo one; sleep 5'] })).body;
    await waitFor('the job to run', async () => ((await stack.json('GET', `/jobs/${job.id}`)).body.status === 'running' ? true : undefined));
    const { hostname, port } = new URL(stack.baseUrl);
    const socket: Socket = connect(Number(port), hostname);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(`HEAD /jobs/${job.id}/logs/stream HTTP/1.1\r\nHost: ${hostname}\r\nConnection: close\r\nAuthorization: Bearer ${stack.token}\r\n\r\n`);
    const raw: Buffer[] = [];
    socket.on('data', (d: Buffer) => raw.push(d));
    // The headers come at once (not when the job ends); then nothing more, for a while.
    await waitFor('the headers', async () => (Buffer.concat(raw).includes('\r\n\r\n') ? true : undefined), 3000, 20);
    await new Promise((r) => setTimeout(r, 1500));
    socket.destroy();
    const text = Buffer.concat(raw).toString('utf8');
    expect(text).toMatch(/^HTTP\/1\.1 200/);
    expect(text.toLowerCase()).toContain('content-type: text/event-stream');
    expect(text.slice(text.indexOf('\r\n\r\n') + 4)).toBe('');
  }, 60000);

  it('an HTTP/1.0 client (no chunked encoding) gets the same events, unframed, then the connection closes', async () => {
    const job = (await stack.json('POST', '/jobs', { image: TEST_IMAGE, command: ['sh', '-c', 'echo one; sleep 1; echo two'] })).body;
    const { hostname, port } = new URL(stack.baseUrl);
    const socket: Socket = connect(Number(port), hostname);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(`GET /jobs/${job.id}/logs/stream HTTP/1.0\r\nHost: ${hostname}\r\nAuthorization: Bearer ${stack.token}\r\n\r\n`);
    const raw: Buffer[] = [];
    socket.on('data', (d: Buffer) => raw.push(d));
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const text = Buffer.concat(raw).toString('utf8');
    const [head, body] = [text.slice(0, text.indexOf('\r\n\r\n')), text.slice(text.indexOf('\r\n\r\n') + 4)];
    expect(head).toMatch(/^HTTP\/1\.1 200/);
    expect(head.toLowerCase()).not.toContain('transfer-encoding');
    // Nothing but events: no chunk sizes between them.
    expect(body.startsWith('retry: 1000\n\n')).toBe(true);
    const blocks = body.split('\n\n').filter(Boolean);
    expect(blocks.every((b) => /^(retry|id|event|data|:)/m.test(b) && !/^[0-9a-f]+\r$/m.test(b))).toBe(true);
    const lines = blocks.filter((b) => b.includes('\nevent: line\n')).map((b) => JSON.parse(b.slice(b.indexOf('data: ') + 6)).line);
    expect(lines.filter((l: string) => l === 'one' || l === 'two')).toEqual(['one', 'two']);
    expect(body).toMatch(/event: end\ndata: \{"status":"completed"/);
  }, 60000);
});
