import { LogKeep, LogLevel, LogLine, LogStream } from '@flashpods/contracts';
import { formatTimePrefix, INDEX_RECORD_BYTES, IndexFlags, readIndexAfter, readTail } from '@flashpods/log-format';
import { appendFile, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LogFileWriter } from './log-file.writer';

const T0 = Date.UTC(2026, 10, 20, 10, 30, 0, 123);
const line = (seq: number, text: string, stream = LogStream.Stdout): LogLine => ({
  seq,
  ts: T0 + seq,
  stream,
  text: Buffer.from(text),
});

describe('LogFileWriter', () => {
  let dir: string;
  beforeEach(async () => (dir = await mkdtemp(join(tmpdir(), 'fp-writer-'))));
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('writes seed-000 lines and skips what it already has', async () => {
    const w = await LogFileWriter.open(dir, 'job', 1 << 20);
    expect(await w.append([line(1, 'hello'), line(2, 'oops', LogStream.Stderr)])).toBe(2);
    expect(await w.append([line(1, 'hello'), line(2, 'oops'), line(3, 'again')])).toBe(1);
    await w.close();
    expect(await readFile(join(dir, 'job.log'), 'utf8')).toBe(
      '[10:30:00.124] hello\n[10:30:00.125] oops\n[10:30:00.126] again\n',
    );
    const idx = await readIndexAfter(join(dir, 'job.idx'), 0, 10);
    expect(idx.map((r) => [r.seq, r.stream, r.offset, r.length])).toEqual([
      [1, LogStream.Stdout, 0, 21],
      [2, LogStream.Stderr, 21, 20],
      [3, LogStream.Stdout, 41, 21],
    ]);
  });

  it('refuses a gap rather than writing lines out of order', async () => {
    const w = await LogFileWriter.open(dir, 'job', 1 << 20);
    await expect(w.append([line(2, 'early')])).rejects.toThrow('expected seq 1');
    await w.close();
  });

  it('stops at the cap with the marker line, keeps the beginning, and counts on', async () => {
    const w = await LogFileWriter.open(dir, 'job', 1024);
    const lines = Array.from({ length: 100 }, (_, i) => line(i + 1, `line ${String(i + 1).padStart(3, '0')}`));
    await w.append(lines);
    const size = (await stat(join(dir, 'job.log'))).size;
    const content = await readFile(join(dir, 'job.log'), 'utf8');
    const kept = content.split('\n').filter(Boolean);
    expect(kept[0]).toBe('[10:30:00.124] line 001');
    expect(kept[kept.length - 1]).toMatch(/^\[10:30:00\.\d{3}\] \[TRUNCATED - log exceeded 1024 bytes limit\]$/);
    expect(kept[kept.length - 2]).toBe(`[10:30:00.${123 + kept.length - 1}] line ${String(kept.length - 1).padStart(3, '0')}`);
    // Within the cap, and filled up to it: the line that did not fit would have passed it.
    const beforeMarker = size - Buffer.byteLength(kept[kept.length - 1] + '\n');
    const nextLine = Buffer.byteLength(`[10:30:00.000] line ${String(kept.length).padStart(3, '0')}\n`);
    expect(beforeMarker).toBeLessThanOrEqual(1024);
    expect(beforeMarker + nextLine).toBeGreaterThan(1024);
    expect(w.current).toMatchObject({ truncated: true, lastSeq: 100, lines: kept.length, bytes: size });
    expect(await w.append([line(101, 'after the cap')])).toBe(0);
    await w.close();
  });

  it('two writers given the same batches in any interleaving leave the file one writer would', async () => {
    const batches = [1, 4, 9, 10, 25].map((first, i, all) =>
      Array.from({ length: (all[i + 1] ?? 40) - first }, (_, k) => line(first + k, `line ${first + k}${'x'.repeat(k % 7)}`)),
    );
    const refDir = await mkdtemp(join(tmpdir(), 'fp-writer-ref-'));
    try {
      const ref = await LogFileWriter.open(refDir, 'job', 1 << 20);
      for (const b of batches) await ref.append(b);
      await ref.close();

      // `a` owns the job; `b` takes over after batch 0 while `a`, stale, goes on writing what it read.
      const a = await LogFileWriter.open(dir, 'job', 1 << 20);
      await a.append(batches[0]);
      const b = await LogFileWriter.open(dir, 'job', 1 << 20);
      await a.append(batches[1]);
      await b.append(batches[1]);
      await b.append(batches[2]);
      await a.append(batches[2]);
      await a.append(batches[3]);
      await b.append([...batches[2], ...batches[3]]);
      await b.append(batches[4]);
      await a.append(batches[4]);
      await Promise.all([a.close(), b.close()]);

      expect((await readFile(join(dir, 'job.log'))).equals(await readFile(join(refDir, 'job.log')))).toBe(true);
      expect((await readFile(join(dir, 'job.idx'))).equals(await readFile(join(refDir, 'job.idx')))).toBe(true);
      const records = await readIndexAfter(join(dir, 'job.idx'), 0, 100);
      expect(records.map((r) => r.seq)).toEqual(Array.from({ length: 39 }, (_, i) => i + 1));
    } finally {
      await rm(refDir, { recursive: true, force: true });
    }
  });

  it('cuts off a write a crash left half done, and resumes at the right seq', async () => {
    const w = await LogFileWriter.open(dir, 'job', 1 << 20);
    await w.append([line(1, 'one'), line(2, 'two')]);
    await w.close();
    // A crash mid-batch: a line in the log without its record, and half a record.
    await appendFile(join(dir, 'job.log'), '[10:30:00.126] thr');
    await appendFile(join(dir, 'job.idx'), Buffer.alloc(INDEX_RECORD_BYTES / 2));
    const again = await LogFileWriter.open(dir, 'job', 1 << 20);
    expect(again.current).toMatchObject({ lastSeq: 2, lines: 2 });
    await again.append([line(2, 'two'), line(3, 'three')]);
    await again.close();
    const tail = await readTail(join(dir, 'job.log'), 10);
    expect(tail.data.toString()).toBe('[10:30:00.124] one\n[10:30:00.125] two\n[10:30:00.126] three\n');
    expect((await stat(join(dir, 'job.idx'))).size).toBe(3 * INDEX_RECORD_BYTES);
  });
});

describe('LogFileWriter, log_keep head_tail', () => {
  let dir: string;
  beforeEach(async () => (dir = await mkdtemp(join(tmpdir(), 'fp-writer-ht-'))));
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const MAX = 240;
  const MARKER = '[TRUNCATED - log exceeded 240 bytes limit]';
  /** `line NNN`: 8 characters, 24 bytes stored. */
  const numbered = (seq: number) => line(seq, `line ${String(seq).padStart(3, '0')}`);
  const stored = (l: LogLine) => `${formatTimePrefix(l.ts)}${l.text.toString()}\n`;
  const markerAt = (ts: number) => `${formatTimePrefix(ts)}${MARKER}\n`;

  async function write(keep: LogKeep, lines: LogLine[], jobId = `job-${keep}`) {
    const w = await LogFileWriter.open(dir, jobId, MAX, { keep });
    // In three batches, as the stream would deliver them.
    const third = Math.ceil(lines.length / 3);
    for (let i = 0; i < lines.length; i += third) await w.append(lines.slice(i, i + third));
    const running = { ...w.current };
    await w.finish();
    const state = { ...w.current };
    await w.close();
    const log = await readFile(join(dir, `${jobId}.log`));
    const idx = await readFile(join(dir, `${jobId}.idx`));
    const records = await readIndexAfter(join(dir, `${jobId}.idx`), 0, 10000);
    return { w, running, state, log, idx, records, leftovers: (await readdir(dir)).filter((n) => n.startsWith(jobId) && !/\.(log|idx)$/.test(n)) };
  }

  it('with fewer bytes than the cap, stores exactly what head stores', async () => {
    const lines = Array.from({ length: 7 }, (_, i) => numbered(i + 1));
    const head = await write(LogKeep.Head, lines);
    const ht = await write(LogKeep.HeadTail, lines);
    expect(ht.log.equals(head.log)).toBe(true);
    expect(ht.idx.equals(head.idx)).toBe(true);
    expect(ht.state).toEqual({ bytes: 168, lines: 7, lastSeq: 7, truncated: false });
    expect(ht.leftovers).toEqual([]);
  });

  it('at the cap exactly, keeps every line, as head does, and is not truncated', async () => {
    const lines = Array.from({ length: 10 }, (_, i) => numbered(i + 1)); // 10 × 24 = 240
    const head = await write(LogKeep.Head, lines);
    const ht = await write(LogKeep.HeadTail, lines);
    expect(ht.log.toString()).toBe(lines.map(stored).join(''));
    expect(ht.log.equals(head.log)).toBe(true);
    expect(ht.idx.equals(head.idx)).toBe(true);
    // Past the head (120 bytes) the lines waited in the tail; they all fitted.
    expect(ht.running).toEqual({ bytes: 240, lines: 10, lastSeq: 10, truncated: false });
    expect(ht.state).toEqual({ bytes: 240, lines: 10, lastSeq: 10, truncated: false });
    expect(ht.leftovers).toEqual([]);
  });

  it('one byte over the cap: the head half, the marker, then the last lines that fit the other half', async () => {
    // 9 × 24 + 25 = 241 bytes.
    const lines = [...Array.from({ length: 9 }, (_, i) => numbered(i + 1)), line(10, 'last-line')];
    const ht = await write(LogKeep.HeadTail, lines);
    // Head: lines 1-5 (120 bytes, exactly half). Tail budget 120: lines 7-10 (24 × 3 + 25 = 97);
    // line 6 too would make 121. Line 6 is dropped and the marker carries its seq and time.
    const expected = [...lines.slice(0, 5).map(stored), markerAt(lines[5].ts), ...lines.slice(6).map(stored)].join('');
    expect(ht.log.toString()).toBe(expected);
    expect(ht.records.map((r) => [r.seq, r.offset, r.length, r.flags])).toEqual([
      [1, 0, 24, 0],
      [2, 24, 24, 0],
      [3, 48, 24, 0],
      [4, 72, 24, 0],
      [5, 96, 24, 0],
      [6, 120, 58, IndexFlags.Marker],
      [7, 178, 24, IndexFlags.Tail],
      [8, 202, 24, IndexFlags.Tail],
      [9, 226, 24, IndexFlags.Tail],
      [10, 250, 25, IndexFlags.Tail],
    ]);
    expect(ht.records[5]).toMatchObject({ stream: LogStream.System, level: LogLevel.Warn, ts: lines[5].ts });
    expect(ht.running.truncated).toBe(true);
    expect(ht.state).toEqual({ bytes: 275, lines: 10, lastSeq: 10, truncated: true });
    expect(ht.log.length).toBe(ht.state.bytes);
    expect(ht.leftovers).toEqual([]);
    // The whole stays within the cap plus the marker.
    expect(ht.log.length - 58).toBeLessThanOrEqual(MAX);
  });

  it('a single huge line in the middle goes with the gap; one at the end leaves the marker last', async () => {
    const huge = (seq: number) => line(seq, 'h'.repeat(184)); // 200 bytes stored
    const small = (seq: number) => numbered(seq);
    // Head 1-3 (72 bytes; the huge line does not fit the 120 of the head). Budget 240 - 72 = 168:
    // lines 5-6 (48) fit, the huge line with them (248) does not.
    const middle = await write(LogKeep.HeadTail, [small(1), small(2), small(3), huge(4), small(5), small(6)], 'middle');
    const m = [small(1), small(2), small(3)].map(stored).join('') + markerAt(T0 + 4) + [small(5), small(6)].map(stored).join('');
    expect(middle.log.toString()).toBe(m);
    expect(middle.records.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(middle.state).toEqual({ bytes: Buffer.byteLength(m), lines: 6, lastSeq: 6, truncated: true });

    const last = await write(LogKeep.HeadTail, [small(1), small(2), small(3), huge(4)], 'last');
    expect(last.log.toString()).toBe([small(1), small(2), small(3)].map(stored).join('') + markerAt(T0 + 4));
    expect(last.records.map((r) => [r.seq, r.flags])).toEqual([[1, 0], [2, 0], [3, 0], [4, IndexFlags.Marker]]);
    expect(last.state).toMatchObject({ lines: 4, lastSeq: 4, truncated: true });
    expect([...middle.leftovers, ...last.leftovers]).toEqual([]);
  });

  it('a single line: kept whole up to the cap, replaced by the marker past it, like head', async () => {
    const fits = [line(1, 'f'.repeat(224))]; // 240 bytes: more than the head, exactly the cap
    const tooBig = [line(1, 'g'.repeat(225))]; // 241
    for (const [name, lines] of [['fits', fits], ['too-big', tooBig]] as const) {
      const head = await write(LogKeep.Head, lines, `${name}-head`);
      const ht = await write(LogKeep.HeadTail, lines, `${name}-ht`);
      expect([name, ht.log.equals(head.log), ht.idx.equals(head.idx)]).toEqual([name, true, true]);
      expect(ht.state).toEqual(head.state);
    }
    expect((await readFile(join(dir, 'too-big-ht.log'), 'utf8'))).toBe(markerAt(T0 + 1));
  });

  it('keeps few segments on disk while a long log runs, and pages by seq across the gap', async () => {
    const lines = Array.from({ length: 1000 }, (_, i) => numbered(i + 1));
    const w = await LogFileWriter.open(dir, 'long', MAX, { keep: LogKeep.HeadTail });
    let most = 0;
    let mostBytes = 0;
    for (let i = 0; i < lines.length; i += 7) {
      await w.append(lines.slice(i, i + 7));
      most = Math.max(most, w.tailSegmentCount);
      const tail = join(dir, 'long.tail');
      let bytes = 0;
      for (const n of (await readdir(tail)).filter((n) => n.endsWith('.log'))) bytes += (await stat(join(tail, n))).size;
      mostBytes = Math.max(mostBytes, bytes);
    }
    // Segments of 30 bytes (a quarter of the 120-byte tail half): a segment ends below 30 + 24;
    // the segments stay below budget + 2 × (30 + 24) = 120 + 108 bytes.
    expect(mostBytes).toBeLessThan(120 + 108);
    expect(most).toBeLessThanOrEqual(7);
    await w.finish();
    await w.close();
    // `line 1000` is 25 bytes: 25 + 3 × 24 = 97 fit the 120 of the tail, a fifth line would not.
    const expected = [...lines.slice(0, 5).map(stored), markerAt(lines[5].ts), ...lines.slice(996).map(stored)].join('');
    expect(await readFile(join(dir, 'long.log'), 'utf8')).toBe(expected);
    const idx = join(dir, 'long.idx');
    expect((await readIndexAfter(idx, 0, 100)).map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6, 997, 998, 999, 1000]);
    expect((await readIndexAfter(idx, 6, 2)).map((r) => r.seq)).toEqual([997, 998]);
    expect((await readIndexAfter(idx, 500, 100)).map((r) => r.seq)).toEqual([997, 998, 999, 1000]);
    expect((await readIndexAfter(idx, 996, 100)).map((r) => r.seq)).toEqual([997, 998, 999, 1000]);
    expect((await readIndexAfter(idx, 998, 100)).map((r) => r.seq)).toEqual([999, 1000]);
    expect(await readIndexAfter(idx, 1000, 100)).toEqual([]);
    expect(await readdir(dir)).toEqual(['long.idx', 'long.log']);
  });

  it('a writer reopened in the tail phase carries on from the last seq in the segments', async () => {
    const lines = Array.from({ length: 60 }, (_, i) => numbered(i + 1));
    const ref = await write(LogKeep.HeadTail, lines, 'ref');
    const a = await LogFileWriter.open(dir, 'job', MAX, { keep: LogKeep.HeadTail });
    await a.append(lines.slice(0, 33));
    await a.close();
    const b = await LogFileWriter.open(dir, 'job', MAX, { keep: LogKeep.HeadTail });
    expect(b.current).toMatchObject({ lastSeq: 33, truncated: true });
    // The stream delivers again from before what was stored: each line is taken once.
    expect(await b.append(lines.slice(20, 60))).toBe(27);
    await b.finish();
    await b.finish();
    await b.close();
    expect((await readFile(join(dir, 'job.log'))).equals(ref.log)).toBe(true);
    expect((await readFile(join(dir, 'job.idx'))).equals(ref.idx)).toBe(true);
  });
});
