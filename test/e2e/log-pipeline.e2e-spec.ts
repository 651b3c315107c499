import { storedLineBytes } from '@flashpods/log-format';
import { readEvents } from '../support/sse';
import { freePort, Stack } from '../support/stack';
import { TEST_IMAGE, waitFor } from '../support/test-env';

const PREFIX = /^\[\d{2}:\d{2}:\d{2}\.\d{3}\] /;
const PREFIX_BYTES = 15;

/** Splits a downloaded log into lines (Buffers without prefix and newline). */
function storedLines(file: Buffer): Buffer[] {
  const lines: Buffer[] = [];
  const malformed: string[] = [];
  for (let at = 0; at < file.length; ) {
    let nl = file.indexOf(0x0a, at);
    if (nl === -1) {
      malformed.push(`no newline at the end: ${file.subarray(at, at + 40)}`);
      nl = file.length;
    }
    const prefix = file.subarray(at, at + PREFIX_BYTES).toString();
    if (!PREFIX.test(prefix)) malformed.push(`bad prefix at byte ${at}: ${prefix}`);
    lines.push(file.subarray(at + PREFIX_BYTES, nl));
    at = nl + 1;
  }
  expect(malformed).toEqual([]);
  return lines;
}

/** A shell `printf` writing exactly these bytes, octal-escaped. */
const printfBytes = (b: Buffer) => `printf '${[...b].map((x) => `\\${x.toString(8).padStart(3, '0')}`).join('')}'`;

describe('log pipeline (real containers)', () => {
  let stack: Stack;
  beforeAll(async () => (stack = await Stack.start(['api', 'runner', 'persister'])), 60000);
  afterAll(() => stack?.stop());

  async function run(command: string[], timeoutMs = 60000) {
    const created = await stack.json('POST', '/jobs', { image: TEST_IMAGE, command });
    expect(created.status).toBe(201);
    return (await stack.waitTerminal(created.body.id, timeoutMs)).job;
  }

  async function download(id: string): Promise<Buffer> {
    const res = await stack.request('GET', `/jobs/${id}/logs/download`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-disposition')).toBe(`attachment; filename="${id}.log"`);
    return Buffer.from(await res.arrayBuffer());
  }

  async function allLogs(id: string, filter: string): Promise<{ seq: number; line: string; stream: string }[]> {
    const out: { seq: number; line: string; stream: string }[] = [];
    for (let after = 0; ; ) {
      const page = await stack.json('GET', `/jobs/${id}/logs?after_seq=${after}&limit=1000&${filter}`);
      expect(page.status).toBe(200);
      out.push(...page.body.logs);
      if (page.body.next_after_seq === after) return out;
      after = page.body.next_after_seq;
    }
  }

  it('delivers 200,000 alternating stdout/stderr lines all, once each, in order; the stream filter returns the stderr half', async () => {
    const job = await run(['awk', 'BEGIN{for(i=1;i<=200000;i++){if(i%2)print i;else print i > "/dev/stderr"}}'], 120000);
    expect(job.status).toBe('completed');
    const stderr = await allLogs(job.id, 'stream=stderr');
    expect(stderr.map((l) => l.line)).toEqual(Array.from({ length: 100000 }, (_, i) => String(2 * (i + 1))));
    expect(stderr.every((l) => l.stream === 'stderr')).toBe(true);
    const stdout = (await allLogs(job.id, 'stream=stdout')).map((l) => l.line);
    expect(stdout).toEqual(Array.from({ length: 100000 }, (_, i) => String(2 * i + 1)));
    const file = storedLines(await download(job.id)).map(String);
    const numbers = file.filter((l) => /^\d+$/.test(l));
    expect(numbers.length).toBe(200000);
    expect(new Set(numbers).size).toBe(200000);
    expect(job.log.lines).toBe(file.length);

    const tail = await stack.json('GET', `/jobs/${job.id}/output?tail=10000`);
    expect(tail.body.lines).toBe(10000);
    expect(tail.body.output.split('\n').filter(Boolean)).toHaveLength(10000);
  }, 180000);

  it('stores multi-byte UTF-8, \\r, ANSI codes and invalid bytes written in odd-sized pieces byte for byte', async () => {
    const text = Buffer.concat([
      Buffer.from('héllo wörld 中文 🎉 ✓\n'),
      Buffer.from('\x1b[31mred\x1b[0m 10%\r50%\r100%\n'),
      Buffer.from([0x62, 0x61, 0x64, 0xff, 0xfe, 0xc3, 0x28, 0x0a]),
    ]);
    const pieces: Buffer[] = [];
    for (let at = 0, size = 1; at < text.length; at += size, size = (size % 5) + 2) pieces.push(text.subarray(at, at + size));
    const script = pieces.map(printfBytes).join('; sleep 0.01; ');
    const job = await run(['sh', '-c', script]);
    expect(job.status).toBe('completed');
    const lines = storedLines(await download(job.id));
    const expected = text.subarray(0, text.length - 1).toString('latin1').split('\n').map((l) => Buffer.from(l, 'latin1'));
    const user = lines.filter((l) => expected.some((e) => e.equals(l)));
    expect(user).toEqual(expected);
  });

  it('keeps a 1 MiB line whole, splits one byte longer without loss, and keeps a last line without newline', async () => {
    const job = await run([
      'sh',
      '-c',
      "head -c 1048576 /dev/zero | tr '\\0' x; echo; head -c 1048577 /dev/zero | tr '\\0' y; echo; printf 'the end, no newline'",
    ]);
    expect(job.status).toBe('completed');
    const lines = storedLines(await download(job.id)).map(String);
    expect(lines).toContain('x'.repeat(1048576));
    const ys = lines.filter((l) => /^y+$/.test(l));
    expect(ys.map((l) => l.length)).toEqual([1048576, 1]);
    expect(lines).toContain('the end, no newline');
    const last = await stack.json('GET', `/jobs/${job.id}/output?tail=2`);
    expect(last.body.output).toMatch(/\] the end, no newline\n\[[^\]]+\] exited with code 0\n$/);
  });

  it('answers tail=1, 100 and the 400s outside 1..10000', async () => {
    const job = await run(['sh', '-c', 'i=1; while [ $i -le 300 ]; do echo "n $i"; i=$((i+1)); done']);
    const one = await stack.json('GET', `/jobs/${job.id}/output?tail=1`);
    expect(one.body).toMatchObject({ lines: 1, truncated: false, total_bytes: job.log.bytes });
    expect(one.body.output).toMatch(/^\[[^\]]+\] exited with code 0\n$/);
    const hundred = await stack.json('GET', `/jobs/${job.id}/output?tail=100`);
    const lines = hundred.body.output.split('\n').filter(Boolean);
    expect(lines).toHaveLength(100);
    expect(lines[98].replace(PREFIX, '')).toBe('n 300');
    const dflt = await stack.json('GET', `/jobs/${job.id}/output`);
    expect(dflt.body.lines).toBe(100);
    for (const bad of ['0', '10001', '-1', 'abc', '1.5', '', '99999999999']) {
      const r = await stack.json('GET', `/jobs/${job.id}/output?tail=${encodeURIComponent(bad)}`);
      expect([bad, r.status, r.body.error]).toEqual([bad, 400, 'invalid_request']);
    }
    const max = await stack.json('GET', `/jobs/${job.id}/output?tail=10000`);
    expect(max.status).toBe(200);
  });

  it('filters by level (JSON level field), since, and q; paging resumes after the last line examined', async () => {
    const job = await run([
      'sh',
      '-c',
      `echo '{"level":"warn","msg":"disk low"}'; echo plain; echo '{"level":"debug","msg":"x"}'; sleep 0.05; echo boom >&2; sleep 0.05; echo 'Disk ok'`,
    ]);
    const warn = await stack.json('GET', `/jobs/${job.id}/logs?level=warn`);
    expect(warn.body.logs.map((l: any) => l.line)).toEqual(['{"level":"warn","msg":"disk low"}']);
    const errors = await stack.json('GET', `/jobs/${job.id}/logs?level=error,debug`);
    expect(errors.body.logs.map((l: any) => [l.level, l.line])).toEqual([
      ['debug', '{"level":"debug","msg":"x"}'],
      ['error', 'boom'],
    ]);
    const q = await stack.json('GET', `/jobs/${job.id}/logs?q=DISK`);
    expect(q.body.logs.map((l: any) => l.line)).toEqual(['{"level":"warn","msg":"disk low"}', 'Disk ok']);
    const page1 = await stack.json('GET', `/jobs/${job.id}/logs?q=disk&limit=1`);
    const page2 = await stack.json('GET', `/jobs/${job.id}/logs?q=disk&limit=1&after_seq=${page1.body.next_after_seq}`);
    expect(page2.body.logs.map((l: any) => l.line)).toEqual(['Disk ok']);
    const future = await stack.json('GET', `/jobs/${job.id}/logs?since=${encodeURIComponent(new Date(Date.now() + 60000).toISOString())}`);
    expect(future.body.logs).toEqual([]);
    expect(future.body.job.id).toBe(job.id);
    for (const bad of ['level=loud', 'stream=stdin', 'since=yesterday', 'limit=0', 'limit=1001', 'after_seq=-1', 'bogus=1']) {
      const r = await stack.json('GET', `/jobs/${job.id}/logs?${bad}`);
      expect([bad, r.status]).toEqual([bad, 400]);
    }
  });

  it('streams every line live over SSE; a reconnect with Last-Event-ID continues with no gap or duplicate, then `end`', async () => {
    const created = await stack.json('POST', '/jobs', {
      image: TEST_IMAGE,
      command: ['sh', '-c', 'i=0; while [ $i -lt 150 ]; do echo "tick $i"; i=$((i+1)); sleep 0.02; done'],
    });
    const url = `${stack.baseUrl}/jobs/${created.body.id}/logs/stream`;
    const auth = { authorization: `Bearer ${stack.token}` };
    let ticks = 0;
    const first = await readEvents(url, auth, (e) => e.event === 'line' && /tick/.test(e.data) && ++ticks === 40);
    const lastId = first[first.length - 1].id!;
    const rest = await readEvents(url, { ...auth, 'last-event-id': lastId }, (e) => e.event === 'end');
    const lines = [...first, ...rest].filter((e) => e.event === 'line').map((e) => JSON.parse(e.data));
    expect(lines.map((l) => l.seq)).toEqual(Array.from({ length: lines.length }, (_, i) => i + 1));
    expect(lines.map((l) => String(l.seq))).toEqual([...first, ...rest].filter((e) => e.event === 'line').map((e) => e.id));
    expect(lines.filter((l) => /^tick/.test(l.line)).map((l) => l.line)).toEqual(Array.from({ length: 150 }, (_, i) => `tick ${i}`));
    const end = rest[rest.length - 1];
    expect(end.event).toBe('end');
    expect(JSON.parse(end.data)).toMatchObject({ status: 'completed', exit_code: 0 });
    // Read-your-writes: the stored log holds exactly what was streamed.
    const job = await stack.json('GET', `/jobs/${created.body.id}`);
    expect(job.body.log.lines).toBe(lines.length);
  });
});

describe('several API instances', () => {
  let stack: Stack;
  beforeAll(async () => (stack = await Stack.start(['api', 'runner', 'persister'])), 60000);
  afterAll(() => stack?.stop());

  it('streams a job submitted through one instance from another, to its end', async () => {
    const port = await freePort();
    stack.startService('api', 'api-2', { API_PORT: String(port) });
    const second = `http://127.0.0.1:${port}`;
    await waitFor('the second API', async () => ((await fetch(`${second}/ready`).catch(() => undefined))?.ok ? true : undefined), 30000, 200);
    const created = await stack.json('POST', '/jobs', {
      image: TEST_IMAGE,
      command: ['sh', '-c', 'i=1; while [ $i -le 100 ]; do echo "n $i"; i=$((i+1)); sleep 0.01; done'],
    });
    const events = await readEvents(`${second}/jobs/${created.body.id}/logs/stream`, { authorization: `Bearer ${stack.token}` }, (e) => e.event === 'end');
    const lines = events.filter((e) => e.event === 'line').map((e) => JSON.parse(e.data).line as string);
    expect(lines.filter((l) => l.startsWith('n '))).toEqual(Array.from({ length: 100 }, (_, i) => `n ${i + 1}`));
    expect(JSON.parse(events[events.length - 1].data).status).toBe('completed');
  });
});

describe('log cap (real containers)', () => {
  let stack: Stack;
  beforeAll(async () => (stack = await Stack.start(['api', 'runner', 'persister'], { LOG_MAX_BYTES: '4096' })), 60000);
  afterAll(() => stack?.stop());

  it('stops at LOG_MAX_BYTES with the marker line, keeps the beginning, and the job runs to its end', async () => {
    const created = await stack.json('POST', '/jobs', {
      image: TEST_IMAGE,
      command: ['sh', '-c', 'i=0; while [ $i -lt 500 ]; do echo "line $i"; i=$((i+1)); done; sleep 1; echo after-the-cap; exit 0'],
    });
    const { job } = await stack.waitTerminal(created.body.id);
    expect(job).toMatchObject({ status: 'completed', exit_code: 0, log: { truncated: true } });
    const res = await stack.request('GET', `/jobs/${job.id}/logs/download`);
    const file = Buffer.from(await res.arrayBuffer());
    const lines = file.toString().split('\n').filter(Boolean);
    const marker = lines[lines.length - 1];
    expect(marker).toMatch(/^\[\d{2}:\d{2}:\d{2}\.\d{3}\] \[TRUNCATED - log exceeded 4096 bytes limit\]$/);
    // Capture stops exactly when the next line would pass the cap: what is kept fits, and kept
    // plus the first line left out (the one after the last kept `line N`, as stored) does not.
    const kept = file.length - Buffer.byteLength(marker + '\n');
    const numbered = lines.map((l) => / line (\d+)$/.exec(l)).filter((m) => m !== null).map((m) => Number(m[1]));
    const last = numbered[numbered.length - 1];
    expect(lines[lines.length - 2]).toMatch(new RegExp(`^\\[\\d{2}:\\d{2}:\\d{2}\\.\\d{3}\\] line ${last}$`));
    expect(numbered).toEqual(Array.from({ length: last + 1 }, (_, i) => i));
    expect(kept).toBeLessThanOrEqual(4096);
    expect(kept + storedLineBytes(Buffer.byteLength(`line ${last + 1}`))).toBeGreaterThan(4096);
    expect(lines.some((l) => l.endsWith('line 0'))).toBe(true);
    expect(lines.some((l) => l.includes('after-the-cap'))).toBe(false);
    const out = await stack.json('GET', `/jobs/${job.id}/output?tail=1`);
    expect(out.body).toMatchObject({ truncated: true, total_bytes: file.length, output: marker + '\n' });
  });
});

describe('log endpoints before a job starts', () => {
  let stack: Stack;
  beforeAll(async () => (stack = await Stack.start(['api'])), 60000);
  afterAll(() => stack?.stop());

  it('answers 404 logs_not_available while pending and 404 job_not_found for unknown or malformed ids', async () => {
    const created = await stack.json('POST', '/jobs', { image: TEST_IMAGE, command: ['true'] });
    expect(created.body.status).toBe('pending');
    for (const path of ['output', 'logs', 'logs/stream', 'logs/download']) {
      if (path !== 'logs/stream') {
        const r = await stack.json('GET', `/jobs/${created.body.id}/${path}`);
        expect([path, r.status, r.body.error]).toEqual([path, 404, 'logs_not_available']);
      }
      for (const id of ['00000000-0000-4000-8000-000000000000', 'not-a-uuid', "1'%20OR%201=1", '..%2F..%2Fetc%2Fpasswd']) {
        const u = await stack.json('GET', `/jobs/${id}/${path}`);
        expect([path, id, u.status, u.body.error]).toEqual([path, id, 404, 'job_not_found']);
      }
    }
  });

  it('keeps a live stream opened on a pending job open, and ends it when the job is cancelled', async () => {
    const created = await stack.json('POST', '/jobs', { image: TEST_IMAGE, command: ['true'] });
    const events = readEvents(
      `${stack.baseUrl}/jobs/${created.body.id}/logs/stream`,
      { authorization: `Bearer ${stack.token}` },
      (e) => e.event === 'end',
      15000,
    );
    await new Promise((r) => setTimeout(r, 700));
    expect((await stack.json('POST', `/jobs/${created.body.id}/cancel`)).status).toBe(202);
    const got = await events;
    expect(got.map((e) => e.event)).toEqual(['end']);
    expect(JSON.parse(got[0].data)).toMatchObject({ status: 'cancelled' });
  });
});
