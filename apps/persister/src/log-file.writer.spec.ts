import { LogKeep, LogLevel, LogLine, LogStream } from '@flashpods/contracts';
import { encodeLines, formatTimePrefix, INDEX_RECORD_BYTES, IndexFlags, IndexRecord, readIndexAfter, readTail } from '@flashpods/log-format';
import { appendFile, FileHandle, mkdir, mkdtemp, open, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EncodedChunk, LogFileWriter } from './log-file.writer';

// The real formatter, counted: lines that share a timestamp must share one formatted prefix.
jest.mock('@flashpods/log-format', () => {
  const actual = jest.requireActual('@flashpods/log-format');
  return { ...actual, formatTimePrefix: jest.fn(actual.formatTimePrefix) };
});

const T0 = Date.UTC(2026, 10, 20, 10, 30, 0, 123);
const line = (seq: number, text: string, stream = LogStream.Stdout, ts = T0 + seq): LogLine => ({
  seq,
  ts,
  stream,
  text: Buffer.from(text),
});
/** The index record of a line at `T0 + seq`; what the default arguments say unless given. */
const rec = (seq: number, offset: number, length: number, more: Partial<IndexRecord> = {}): IndexRecord => ({
  seq,
  ts: T0 + seq,
  offset,
  length,
  stream: LogStream.Stdout,
  level: LogLevel.Info,
  flags: 0,
  ...more,
});
const MARKER_1MB = '[TRUNCATED - log exceeded 1 MB limit]';
const MARKER_1024 = '[TRUNCATED - log exceeded 1024 bytes limit]';
const chunk = (lines: LogLine[]): EncodedChunk => ({ data: encodeLines(lines), firstSeq: lines[0].seq, count: lines.length });

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

  it('many small batches at once (a round over many jobs) take buffers sized to them, not pool-sized ones', async () => {
    const writers = await Promise.all(Array.from({ length: 64 }, (_, i) => LogFileWriter.open(dir, `job-${i}`, 1 << 20)));
    // Warm: the pool holds its buffers, so what the round below takes is what it allocates.
    await Promise.all(writers.map((w, i) => w.appendChunks([chunk([line(1, `first of ${i}`)])])));
    // What the round allocates, counted at the allocation (a GC meanwhile changes nothing here).
    const alloc = jest.spyOn(Buffer, 'allocUnsafe');
    // Every batch takes its buffers before its first write: all 128 are out at once here.
    const round = writers.map((w, i) => w.appendChunks([chunk([line(2, `second of ${i}`)])]));
    const allocated = alloc.mock.calls.reduce((n, [size]) => n + size, 0);
    alloc.mockRestore();
    expect(await Promise.all(round)).toEqual(writers.map(() => 1));
    await Promise.all(writers.map((w) => w.close()));
    // 64 lines of about 30 bytes: a few kilobytes, whatever the pool's buffers' size (256 KiB each).
    expect(allocated).toBeLessThan(1024 * 1024);
    for (let i = 0; i < 64; i += 21) {
      expect(await readFile(join(dir, `job-${i}.log`), 'utf8')).toBe(`[10:30:00.124] first of ${i}\n[10:30:00.125] second of ${i}\n`);
    }
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
    expect(again.current).toEqual({ bytes: 38, lines: 2, lastSeq: 2, truncated: false });
    // Cut back on open, before anything else is written.
    expect(await readFile(join(dir, 'job.log'), 'utf8')).toBe('[10:30:00.124] one\n[10:30:00.125] two\n');
    expect((await stat(join(dir, 'job.idx'))).size).toBe(2 * INDEX_RECORD_BYTES);
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

/** A fresh directory per test, removed after it. */
function tempDir(): { readonly path: string } {
  const d = { path: '' };
  beforeEach(async () => (d.path = await mkdtemp(join(tmpdir(), 'fp-writer-'))));
  afterEach(() => rm(d.path, { recursive: true, force: true }));
  return d;
}

const files = async (dir: string) => ({ log: await readFile(join(dir, 'job.log')), idx: await readFile(join(dir, 'job.idx')) });
const records = (dir: string) => readIndexAfter(join(dir, 'job.idx'), 0, 1000);

/** What one writer that never failed leaves after these batches: the reference for exact bytes. */
async function reference(dir: string, batches: LogLine[][], maxBytes = 1 << 20): Promise<{ log: Buffer; idx: Buffer }> {
  const refDir = join(dir, 'ref');
  await mkdir(refDir);
  const w = await LogFileWriter.open(refDir, 'job', maxBytes);
  for (const b of batches) await w.append(b);
  await w.close();
  return files(refDir);
}

describe('LogFileWriter bytes', () => {
  const tmp = tempDir();

  it('stores each line as prefix, text and newline, with an exact record and the level of that line', async () => {
    const w = await LogFileWriter.open(tmp.path, 'job', 1 << 20);
    const batch = [
      line(1, 'plain'),
      line(2, 'boom', LogStream.Stderr),
      line(3, '{"level":"warn","msg":"w"}'),
      line(4, '{"level":30}', LogStream.Stderr),
      line(5, 'job started', LogStream.System),
      line(6, ''),
    ];
    expect(await w.append(batch)).toBe(6);
    expect(w.current).toEqual({ bytes: 154, lines: 6, lastSeq: 6, truncated: false });
    await w.close();
    expect(await readFile(join(tmp.path, 'job.log'), 'utf8')).toBe(
      '[10:30:00.124] plain\n' +
        '[10:30:00.125] boom\n' +
        '[10:30:00.126] {"level":"warn","msg":"w"}\n' +
        '[10:30:00.127] {"level":30}\n' +
        '[10:30:00.128] job started\n' +
        '[10:30:00.129] \n',
    );
    expect((await stat(join(tmp.path, 'job.idx'))).size).toBe(6 * INDEX_RECORD_BYTES);
    expect(await records(tmp.path)).toEqual([
      rec(1, 0, 21),
      rec(2, 21, 20, { stream: LogStream.Stderr, level: LogLevel.Error }),
      rec(3, 41, 42, { level: LogLevel.Warn }),
      rec(4, 83, 28, { stream: LogStream.Stderr, level: LogLevel.Info }),
      rec(5, 111, 27, { stream: LogStream.System }),
      rec(6, 138, 16),
    ]);
  });

  it('writes a batch of many lines whole, in one piece', async () => {
    const batch = Array.from({ length: 40 }, (_, i) => line(i + 1, `l${i + 1}`));
    const w = await LogFileWriter.open(tmp.path, 'job', 1 << 20);
    expect(await w.append(batch)).toBe(40);
    await w.close();
    const expected = batch.map((l) => `[10:30:00.${123 + l.seq}] l${l.seq}\n`).join('');
    expect(await readFile(join(tmp.path, 'job.log'), 'utf8')).toBe(expected);
    expect(w.current).toEqual({ bytes: Buffer.byteLength(expected), lines: 40, lastSeq: 40, truncated: false });
    let offset = 0;
    expect(await records(tmp.path)).toEqual(
      batch.map((l) => {
        const length = 15 + l.text.length + 1;
        offset += length;
        return rec(l.seq, offset - length, length);
      }),
    );
  });

  it('formats the prefix once for consecutive lines with the same timestamp', async () => {
    const format = jest.mocked(formatTimePrefix);
    const w = await LogFileWriter.open(tmp.path, 'job', 1 << 20);
    format.mockClear();
    await w.append([line(1, 'a', LogStream.Stdout, T0), line(2, 'b', LogStream.Stdout, T0), line(3, 'c', LogStream.Stdout, T0 + 1)]);
    await w.append([line(4, 'd', LogStream.Stdout, T0 + 1), line(5, 'e', LogStream.Stdout, T0)]);
    expect(format.mock.calls).toEqual([[T0], [T0 + 1], [T0]]);
    await w.close();
    expect(await readFile(join(tmp.path, 'job.log'), 'utf8')).toBe(
      '[10:30:00.123] a\n[10:30:00.123] b\n[10:30:00.124] c\n[10:30:00.124] d\n[10:30:00.123] e\n',
    );
  });

  it('repeats nothing: a batch it already has writes nothing, a gap between chunks writes none of the call', async () => {
    const w = await LogFileWriter.open(tmp.path, 'job', 1 << 20);
    await w.append([line(1, 'one'), line(2, 'two')]);
    const before = await files(tmp.path);
    expect(await w.append([line(1, 'one'), line(2, 'two')])).toBe(0);
    // Seqs are implied within a chunk: a gap can only come between chunks.
    await expect(w.appendChunks([chunk([line(3, 'three'), line(4, 'four')]), chunk([line(6, 'six')])])).rejects.toThrow(
      new Error('gap in log: expected seq 5, got 6'),
    );
    expect(w.current).toEqual({ bytes: 38, lines: 2, lastSeq: 2, truncated: false });
    expect(await files(tmp.path)).toEqual(before);
    expect(await w.append([line(3, 'three')])).toBe(1);
    await w.close();
    expect(await readFile(join(tmp.path, 'job.log'), 'utf8')).toBe('[10:30:00.124] one\n[10:30:00.125] two\n[10:30:00.126] three\n');
  });

  it('takes encoded chunks: consecutive chunks in one call, and the lines of a chunk it already has skipped', async () => {
    const w = await LogFileWriter.open(tmp.path, 'job', 1 << 20);
    expect(await w.appendChunks([chunk([line(1, 'a'), line(2, 'b')]), chunk([line(3, 'c')])])).toBe(3);
    expect(await w.appendChunks([chunk([line(2, 'b'), line(3, 'c'), line(4, 'd')])])).toBe(1);
    // A line with no text at the very end of a chunk: its header ends exactly where the chunk does.
    expect(await w.appendChunks([chunk([line(5, 'e'), line(6, '')])])).toBe(2);
    await w.close();
    expect(await readFile(join(tmp.path, 'job.log'), 'utf8')).toBe(
      '[10:30:00.124] a\n[10:30:00.125] b\n[10:30:00.126] c\n[10:30:00.127] d\n[10:30:00.128] e\n[10:30:00.129] \n',
    );
    expect(await records(tmp.path)).toEqual([rec(1, 0, 17), rec(2, 17, 17), rec(3, 34, 17), rec(4, 51, 17), rec(5, 68, 17), rec(6, 85, 16)]);
  });

  it('refuses a malformed chunk whole: a cut-off header, a line longer than what is left', async () => {
    const w = await LogFileWriter.open(tmp.path, 'job', 1 << 20);
    await w.append([line(1, 'one')]);
    const before = await files(tmp.path);
    const cutHeader = Buffer.concat([encodeLines([line(2, 'two')]), Buffer.alloc(5)]);
    await expect(w.appendChunks([{ data: cutHeader, firstSeq: 2, count: 2 }])).rejects.toThrow(
      new Error('truncated line header at byte 16'),
    );
    const overrun = encodeLines([line(2, 'two')]);
    overrun.writeUInt32BE(10, 9);
    await expect(w.appendChunks([{ data: overrun, firstSeq: 2, count: 1 }])).rejects.toThrow(
      new Error('line of 10 bytes overruns its chunk'),
    );
    expect(w.current).toEqual({ bytes: 19, lines: 1, lastSeq: 1, truncated: false });
    expect(await files(tmp.path)).toEqual(before);
    await w.close();
  });

  it('is closed after close(): a later append fails and changes nothing', async () => {
    const w = await LogFileWriter.open(tmp.path, 'job', 1 << 20);
    await w.append([line(1, 'one')]);
    await w.close();
    const before = await files(tmp.path);
    await expect(w.append([line(2, 'two')])).rejects.toMatchObject({ code: 'EBADF' });
    expect(await files(tmp.path)).toEqual(before);
  });
});

describe('LogFileWriter at the cap', () => {
  const tmp = tempDir();

  it('keeps a line that fills the cap exactly, then writes the marker after it', async () => {
    const w = await LogFileWriter.open(tmp.path, 'job', 1024);
    expect(await w.append([line(1, 'a'.repeat(1008))])).toBe(1);
    expect(w.current).toEqual({ bytes: 1024, lines: 1, lastSeq: 1, truncated: false });
    expect(await w.append([line(2, 'b'), line(3, 'c')])).toBe(1);
    expect(w.current).toEqual({ bytes: 1083, lines: 2, lastSeq: 3, truncated: true });
    expect(await w.append([line(4, 'd')])).toBe(0);
    expect(w.current).toEqual({ bytes: 1083, lines: 2, lastSeq: 4, truncated: true });
    await w.close();
    expect(await readFile(join(tmp.path, 'job.log'), 'utf8')).toBe(`[10:30:00.124] ${'a'.repeat(1008)}\n[10:30:00.125] ${MARKER_1024}\n`);
    expect(await records(tmp.path)).toEqual([
      rec(1, 0, 1024),
      rec(2, 1024, 59, { stream: LogStream.System, level: LogLevel.Warn, flags: 1 }),
    ]);
  });

  it('puts the marker in place of a line one byte over the cap, in the same batch as lines that fit', async () => {
    const w = await LogFileWriter.open(tmp.path, 'job', 1024);
    expect(await w.append([line(1, 'a'.repeat(500)), line(2, 'b'.repeat(493)), line(3, 'c')])).toBe(2);
    expect(w.current).toEqual({ bytes: 516 + 59, lines: 2, lastSeq: 3, truncated: true });
    await w.close();
    expect(await readFile(join(tmp.path, 'job.log'), 'utf8')).toBe(`[10:30:00.124] ${'a'.repeat(500)}\n[10:30:00.125] ${MARKER_1024}\n`);
    expect(await records(tmp.path)).toEqual([
      rec(1, 0, 516),
      rec(2, 516, 59, { stream: LogStream.System, level: LogLevel.Warn, flags: 1 }),
    ]);
  });

  it('puts the marker first when the first line is one byte over', async () => {
    const w = await LogFileWriter.open(tmp.path, 'job', 1024);
    expect(await w.append([line(1, 'a'.repeat(1009))])).toBe(1);
    await w.close();
    expect(await readFile(join(tmp.path, 'job.log'), 'utf8')).toBe(`[10:30:00.124] ${MARKER_1024}\n`);
    expect(await records(tmp.path)).toEqual([rec(1, 0, 59, { stream: LogStream.System, level: LogLevel.Warn, flags: 1 })]);
  });

  it("takes the runner's marker as the marker, and stops there below the cap", async () => {
    const w = await LogFileWriter.open(tmp.path, 'job', 1 << 20);
    expect(await w.append([line(1, 'before'), line(2, MARKER_1MB, LogStream.System), line(3, 'after')])).toBe(2);
    expect(w.current).toEqual({ bytes: 22 + 53, lines: 2, lastSeq: 3, truncated: true });
    await w.close();
    expect(await readFile(join(tmp.path, 'job.log'), 'utf8')).toBe(`[10:30:00.124] before\n[10:30:00.125] ${MARKER_1MB}\n`);
    expect(await records(tmp.path)).toEqual([
      rec(1, 0, 22),
      rec(2, 22, 53, { stream: LogStream.System, level: LogLevel.Warn, flags: 1 }),
    ]);
  });

  it('stores look-alikes of the marker as ordinary lines', async () => {
    const w = await LogFileWriter.open(tmp.path, 'job', 1 << 20);
    const batch = [
      line(1, MARKER_1MB), // the marker's text, on stdout
      line(2, MARKER_1MB.replace('1 MB', '2 MB'), LogStream.System), // same length, other text
      line(3, MARKER_1024, LogStream.System), // another cap's marker
      line(4, 'last'),
    ];
    expect(await w.append(batch)).toBe(4);
    expect(w.current).toEqual({ bytes: 53 + 53 + 59 + 20, lines: 4, lastSeq: 4, truncated: false });
    await w.close();
    expect(await readFile(join(tmp.path, 'job.log'), 'utf8')).toBe(
      `[10:30:00.124] ${MARKER_1MB}\n[10:30:00.125] [TRUNCATED - log exceeded 2 MB limit]\n[10:30:00.126] ${MARKER_1024}\n[10:30:00.127] last\n`,
    );
    expect(await records(tmp.path)).toEqual([
      rec(1, 0, 53),
      rec(2, 53, 53, { stream: LogStream.System }),
      rec(3, 106, 59, { stream: LogStream.System }),
      rec(4, 165, 20),
    ]);
  });

  it('stays truncated across a re-open', async () => {
    const w = await LogFileWriter.open(tmp.path, 'job', 1024);
    await w.append([line(1, 'a'.repeat(1008)), line(2, 'b')]);
    await w.close();
    const before = await files(tmp.path);
    const again = await LogFileWriter.open(tmp.path, 'job', 1024);
    expect(again.current).toEqual({ bytes: 1083, lines: 2, lastSeq: 2, truncated: true });
    expect(await again.append([line(3, 'c')])).toBe(0);
    await again.close();
    expect(await files(tmp.path)).toEqual(before);
  });
});

describe('LogFileWriter re-open', () => {
  const tmp = tempDir();
  const LONG_AGO = new Date('2001-02-03T04:05:06Z');

  it('leaves an intact pair of files untouched, down to their mtime', async () => {
    const w = await LogFileWriter.open(tmp.path, 'job', 1 << 20);
    await w.append([line(1, 'one'), line(2, 'two')]);
    await w.close();
    const before = await files(tmp.path);
    for (const f of ['job.log', 'job.idx']) await utimes(join(tmp.path, f), LONG_AGO, LONG_AGO);
    const again = await LogFileWriter.open(tmp.path, 'job', 1 << 20);
    expect(again.current).toEqual({ bytes: 38, lines: 2, lastSeq: 2, truncated: false });
    await again.close();
    expect(await files(tmp.path)).toEqual(before);
    for (const f of ['job.log', 'job.idx']) expect((await stat(join(tmp.path, f))).mtime).toEqual(LONG_AGO);
  });

  it('cuts off a first write that a crash left with half a record', async () => {
    const record = Buffer.alloc(INDEX_RECORD_BYTES);
    record.writeDoubleBE(1, 0);
    record.writeDoubleBE(T0 + 1, 8);
    await writeFile(join(tmp.path, 'job.log'), '[10:30:00.124] on');
    await writeFile(join(tmp.path, 'job.idx'), record.subarray(0, 16));
    const w = await LogFileWriter.open(tmp.path, 'job', 1 << 20);
    expect(w.current).toEqual({ bytes: 0, lines: 0, lastSeq: 0, truncated: false });
    expect((await stat(join(tmp.path, 'job.log'))).size).toBe(0);
    expect((await stat(join(tmp.path, 'job.idx'))).size).toBe(0);
    expect(await w.append([line(1, 'one')])).toBe(1);
    await w.close();
    expect(await readFile(join(tmp.path, 'job.log'), 'utf8')).toBe('[10:30:00.124] one\n');
    expect(await records(tmp.path)).toEqual([rec(1, 0, 19)]);
  });
});

type WriteStep = number | Error;
let handleProto: { write: (...args: unknown[]) => Promise<{ bytesWritten: number }> };
beforeAll(async () => {
  const fh = await open(__filename, 'r');
  handleProto = Object.getPrototypeOf(fh);
  await fh.close();
});

/**
 * Scripts the next calls of FileHandle#write, in order (the writer writes the log, then the index):
 * a number stores at most that many bytes of what was asked (a short write, as when the disk fills
 * up), an error fails the call. Calls past the script are real.
 */
function scriptWrites(...steps: WriteStep[]): jest.SpyInstance {
  const real = handleProto.write;
  return jest.spyOn(handleProto, 'write').mockImplementation(async function (this: FileHandle, ...args: unknown[]) {
    const [buf, offset, length, position] = args as [Buffer, number, number, number];
    // As the real call does: a range past the end of the buffer is an error, not a shorter write.
    if (offset + length > buf.length) throw new RangeError(`offset ${offset} + length ${length} > ${buf.length}`);
    const step = steps.shift();
    if (step instanceof Error) throw step;
    return real.call(this, buf, offset, step === undefined ? length : Math.min(step, length), position);
  });
}
const ioError = (code: string) => Object.assign(new Error(`${code}: simulated, write`), { code });

describe('LogFileWriter when a write fails', () => {
  const tmp = tempDir();
  let spy: jest.SpyInstance | undefined;
  afterEach(() => spy?.mockRestore());
  const FIRST = [line(1, 'one'), line(2, 'two')];
  const THEN = [line(3, 'three'), line(4, 'four')];
  const COMMITTED = { bytes: 38, lines: 2, lastSeq: 2, truncated: false };

  async function committed(mayRepair?: () => boolean): Promise<{ w: LogFileWriter; before: { log: Buffer; idx: Buffer } }> {
    const w = await LogFileWriter.open(tmp.path, 'job', 1 << 20, { mayRepair });
    await w.append(FIRST);
    return { w, before: await files(tmp.path) };
  }

  it('takes back what a log write stored before it failed, and the retry writes the batch once', async () => {
    const { w, before } = await committed();
    const full = ioError('ENOSPC');
    spy = scriptWrites(5, full);
    await expect(w.append(THEN)).rejects.toBe(full);
    expect(w.current).toEqual(COMMITTED);
    expect(await files(tmp.path)).toEqual(before);
    spy.mockRestore();
    expect(await w.append(THEN)).toBe(2);
    await w.close();
    expect(await files(tmp.path)).toEqual(await reference(tmp.path, [FIRST, THEN]));
  });

  it('takes back the lines too when the index write fails after them', async () => {
    const { w, before } = await committed();
    const eio = ioError('EIO');
    spy = scriptWrites(Infinity, 10, eio);
    await expect(w.append(THEN)).rejects.toBe(eio);
    expect(w.current).toEqual(COMMITTED);
    expect(await files(tmp.path)).toEqual(before);
    await w.close();
  });

  it('leaves a failed write where it stopped when it may not repair (no longer the owner)', async () => {
    const { w } = await committed(() => false);
    const eio = ioError('EIO');
    spy = scriptWrites(Infinity, 10, eio);
    await expect(w.append(THEN)).rejects.toBe(eio);
    expect(w.current).toEqual(COMMITTED);
    await w.close();
    const ref = await reference(tmp.path, [FIRST, THEN]);
    expect(await files(tmp.path)).toEqual({ log: ref.log, idx: ref.idx.subarray(0, 2 * INDEX_RECORD_BYTES + 10) });
  });

  it('leaves the files untouched, mtime included, when a write fails before storing a byte', async () => {
    const { w, before } = await committed();
    const LONG_AGO = new Date('2001-02-03T04:05:06Z');
    for (const f of ['job.log', 'job.idx']) await utimes(join(tmp.path, f), LONG_AGO, LONG_AGO);
    const full = ioError('ENOSPC');
    spy = scriptWrites(full);
    await expect(w.append(THEN)).rejects.toBe(full);
    await w.close();
    expect(await files(tmp.path)).toEqual(before);
    for (const f of ['job.log', 'job.idx']) expect((await stat(join(tmp.path, f))).mtime).toEqual(LONG_AGO);
  });

  it('finishes a write stored a few bytes at a time', async () => {
    const { w } = await committed();
    spy = scriptWrites(...Array<number>(40).fill(7));
    expect(await w.append(THEN)).toBe(2);
    expect(spy).toHaveBeenCalledTimes(6 + 10); // 41 log bytes, 64 index bytes
    spy.mockRestore();
    await w.close();
    expect(await files(tmp.path)).toEqual(await reference(tmp.path, [FIRST, THEN]));
  });

  it('fails a write that stores nothing, says where, and takes back the part before it', async () => {
    const { w, before } = await committed();
    spy = scriptWrites(5, 0);
    await expect(w.append(THEN)).rejects.toThrow(new Error('wrote 0 of 36 bytes at 43'));
    expect(w.current).toEqual(COMMITTED);
    expect(await files(tmp.path)).toEqual(before);
    await w.close();
  });
});
