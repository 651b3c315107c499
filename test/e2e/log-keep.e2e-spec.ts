import { formatTimePrefix, storedLineBytes } from '@flashpods/log-format';
import { readEvents } from '../support/sse';
import { Stack } from '../support/stack';
import { TEST_IMAGE } from '../support/test-env';

const CAP = 4096;
const MARKER = /^\[\d{2}:\d{2}:\d{2}\.\d{3}\] \[TRUNCATED - log exceeded 4096 bytes limit\]$/;
/** 600 lines in bursts of 100 (a live reader keeps up), then a last line of the job's own. */
const COMMAND = [
  'sh',
  '-c',
  'i=0; while [ $i -lt 600 ]; do echo "line $i"; i=$((i+1)); [ $((i % 100)) -eq 0 ] && sleep 0.2; done; echo the-real-last-line; exit 3',
];

interface Line {
  seq: number;
  ts: string;
  stream: string;
  level: string;
  line: string;
}

describe('log_keep (real containers, LOG_MAX_BYTES=4096)', () => {
  let stack: Stack;
  beforeAll(async () => (stack = await Stack.start(['api', 'runner', 'persister'], { LOG_MAX_BYTES: String(CAP) })), 60000);
  afterAll(() => stack?.stop());

  async function download(id: string): Promise<string> {
    const res = await stack.request('GET', `/jobs/${id}/logs/download`);
    expect(res.status).toBe(200);
    return res.text();
  }

  /** Every page of /logs from the start, as a poller reads them. */
  async function pages(id: string, limit: number): Promise<{ logs: Line[]; next_after_seq: number; dropped?: unknown }[]> {
    const out = [];
    for (let after = 0; ; ) {
      const page = await stack.json('GET', `/jobs/${id}/logs?after_seq=${after}&limit=${limit}`);
      expect(page.status).toBe(200);
      out.push(page.body);
      if (page.body.next_after_seq === after) return out;
      after = page.body.next_after_seq;
    }
  }

  const stored = (l: Line) => `${formatTimePrefix(Date.parse(l.ts))}${l.line}`;

  it('head_tail: live readers get every line; the file keeps the head, the marker and the real end; tail and /logs follow', async () => {
    const created = await stack.json('POST', '/jobs', { image: TEST_IMAGE, command: COMMAND, log_keep: 'head_tail' });
    expect(created.status).toBe(201);
    expect(created.body.log_keep).toBe('head_tail');
    const id = created.body.id;
    // Opened on the pending job: it waits for it to start, then follows the stream live.
    const events = await readEvents(`${stack.baseUrl}/jobs/${id}/logs/stream`, { authorization: `Bearer ${stack.token}` }, (e) => e.event === 'end', 60000);
    const { job } = await stack.waitTerminal(id);
    expect(job).toMatchObject({ status: 'failed', exit_code: 3, log_keep: 'head_tail', log: { truncated: true } });

    // Live: every line the job produced, once, in order, none replaced by a marker.
    const live: Line[] = events.filter((e) => e.event === 'line').map((e) => JSON.parse(e.data));
    expect(live.map((l) => l.seq)).toEqual(live.map((_, i) => i + 1));
    // Besides lines and `end`, only `status` events (the job's status as it moves; no id): each names a live status.
    const statuses = events.filter((e) => e.event === 'status');
    for (const e of statuses) expect([e.id, JSON.parse(e.data)]).toEqual([undefined, { status: expect.stringMatching(/^(starting|running)$/) }]);
    expect(events.filter((e) => e.event !== 'status').map((e) => e.id).slice(0, -1)).toEqual(live.map((l) => String(l.seq)));
    expect(events[events.length - 1].event).toBe('end');
    const own = live.filter((l) => l.stream === 'stdout').map((l) => l.line);
    expect(own).toEqual([...Array.from({ length: 600 }, (_, i) => `line ${i}`), 'the-real-last-line']);
    expect(live.some((l) => MARKER.test(stored(l)))).toBe(false);
    const last = live[live.length - 1];
    expect(last).toMatchObject({ stream: 'system', line: 'exited with code 3' });

    // Stored: the longest run of first lines within half the cap, the marker, the longest run of
    // last lines within the rest of the cap; computed here from what the live reader saw.
    const size = (l: Line) => storedLineBytes(Buffer.byteLength(l.line));
    let h = 0;
    for (let bytes = 0; h < live.length && bytes + size(live[h]) <= CAP / 2; h++) bytes += size(live[h]);
    const headBytes = live.slice(0, h).reduce((n, l) => n + size(l), 0);
    let t = live.length;
    for (let bytes = 0; t > h && bytes + size(live[t - 1]) <= CAP - headBytes; t--) bytes += size(live[t - 1]);
    expect(t).toBeGreaterThan(h + 1); // lines were dropped
    const file = await download(id);
    const fileLines = file.split('\n');
    expect(fileLines.pop()).toBe('');
    expect(fileLines.slice(0, h)).toEqual(live.slice(0, h).map(stored));
    expect(fileLines[h]).toMatch(MARKER);
    expect(fileLines[h].slice(0, 15)).toBe(formatTimePrefix(Date.parse(live[h].ts)));
    expect(fileLines.slice(h + 1)).toEqual(live.slice(t).map(stored));
    expect(fileLines[fileLines.length - 1]).toBe(stored(last));
    expect(fileLines[fileLines.length - 2]).toBe(stored(live.find((l) => l.line === 'the-real-last-line')!));
    // Within the cap, as today, plus the marker.
    expect(Buffer.byteLength(file) - Buffer.byteLength(fileLines[h] + '\n')).toBeLessThanOrEqual(CAP);
    expect(job.log).toEqual({ bytes: Buffer.byteLength(file), lines: fileLines.length, truncated: true, mode: 'durable', lines_lost: false });

    // output?tail: the job's real last lines.
    const out = await stack.json('GET', `/jobs/${id}/output?tail=5`);
    expect(out.body).toEqual({
      output: live.slice(-5).map((l) => `${stored(l)}\n`).join(''),
      lines: 5,
      truncated: true,
      total_bytes: Buffer.byteLength(file),
    });

    // /logs: by seq, across the gap, which one page reports; with small pages too (one ends on the marker).
    const dropped = { after_seq: h, lines: t - h };
    for (const limit of [1000, 7, h + 1, h]) {
      const all = await pages(id, limit);
      const logs = all.flatMap((p) => p.logs);
      expect([limit, logs.map((l) => l.seq)]).toEqual([limit, [...live.slice(0, h + 1).map((l) => l.seq), ...live.slice(t).map((l) => l.seq)]]);
      expect(logs[h]).toMatchObject({ seq: h + 1, stream: 'system', level: 'warn' });
      expect(MARKER.test(`${formatTimePrefix(Date.parse(logs[h].ts))}${logs[h].line}`)).toBe(true);
      expect(logs.filter((l, i) => i !== h)).toEqual([...live.slice(0, h), ...live.slice(t)]);
      expect([limit, all.filter((p) => p.dropped !== undefined).map((p) => p.dropped)]).toEqual([limit, [dropped]]);
    }
    // A poller whose cursor is inside the gap (it saw those lines live) is told what it skips.
    const inGap = await stack.json('GET', `/jobs/${id}/logs?after_seq=${h + 3}&limit=2`);
    expect(inGap.body).toMatchObject({ logs: live.slice(t, t + 2), next_after_seq: t + 2, dropped: { after_seq: h + 3, lines: t - h - 3 } });

    // SSE catch-up from the file, resumed before, on, and inside the gap: the kept lines after it.
    for (const after of [h - 1, h + 1, h + 5]) {
      const resumed = await readEvents(`${stack.baseUrl}/jobs/${id}/logs/stream?after_seq=${after}`, { authorization: `Bearer ${stack.token}` }, (e) => e.event === 'end', 20000);
      const seqs = resumed.filter((e) => e.event === 'line').map((e) => Number(e.id));
      const expected = [...live.slice(0, h + 1).map((l) => l.seq), ...live.slice(t).map((l) => l.seq)].filter((s) => s > after);
      expect([after, seqs]).toEqual([after, expected]);
    }

    // Deleted with every file it had.
    expect((await stack.request('DELETE', `/jobs/${id}`)).status).toBe(204);
    expect((await stack.json('GET', `/jobs/${id}`)).status).toBe(404);
  });

  it('head (the default, and when asked): unchanged, the beginning and the marker, no gap report', async () => {
    for (const body of [{ image: TEST_IMAGE, command: COMMAND }, { image: TEST_IMAGE, command: COMMAND, log_keep: 'head' }]) {
      const created = await stack.json('POST', '/jobs', body);
      expect(created.status).toBe(201);
      const { job } = await stack.waitTerminal(created.body.id);
      expect(job).toMatchObject({ status: 'failed', exit_code: 3, log_keep: 'head', log: { truncated: true } });
      const file = await download(job.id);
      const lines = file.split('\n');
      expect(lines.pop()).toBe('');
      const marker = lines[lines.length - 1];
      expect(marker).toMatch(MARKER);
      const numbered = lines.map((l) => / line (\d+)$/.exec(l)).filter((m) => m !== null).map((m) => Number(m[1]));
      const lastKept = numbered[numbered.length - 1];
      expect(numbered).toEqual(Array.from({ length: lastKept + 1 }, (_, i) => i));
      expect(lines[lines.length - 2]).toMatch(new RegExp(`^\\[\\d{2}:\\d{2}:\\d{2}\\.\\d{3}\\] line ${lastKept}$`));
      const kept = Buffer.byteLength(file) - Buffer.byteLength(marker + '\n');
      expect(kept).toBeLessThanOrEqual(CAP);
      expect(kept + storedLineBytes(Buffer.byteLength(`line ${lastKept + 1}`))).toBeGreaterThan(CAP);
      expect(file.includes('the-real-last-line')).toBe(false);
      expect((await stack.json('GET', `/jobs/${job.id}/output?tail=1`)).body).toEqual({
        output: `${marker}\n`,
        lines: 1,
        truncated: true,
        total_bytes: Buffer.byteLength(file),
      });
      const all = await pages(job.id, 1000);
      expect(all.map((p) => Object.keys(p).sort())).toEqual(all.map(() => ['job', 'logs', 'next_after_seq']));
      const logs = all.flatMap((p) => p.logs);
      expect(logs.map((l) => l.seq)).toEqual(logs.map((_, i) => i + 1));
      expect(logs.length).toBe(lines.length);
    }
  });

  it('refuses an unknown log_keep', async () => {
    const res = await stack.json('POST', '/jobs', { image: TEST_IMAGE, command: ['true'], log_keep: 'tail' });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_request');
    expect(res.body.message).toContain('log_keep');
  });
});
