import { LogLine, LogStream } from '@flashpods/contracts';
import { INDEX_RECORD_BYTES, readIndexAfter, readTail } from '@flashpods/log-format';
import { appendFile, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
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
