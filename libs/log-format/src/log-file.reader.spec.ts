import { LogLevel, LogStream } from '@flashpods/contracts';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readIndexAfter, readLinesOf, readSpanOf } from './log-file.reader';
import { INDEX_RECORD_BYTES, IndexRecord, writeIndexRecord } from './log-index';

/** Open file descriptors of this process: a reader must close what it opens. */
const openFds = () => readdir('/proc/self/fd').then((fds) => fds.length);

describe('log file reader', () => {
  let dir: string;
  let logPath: string;
  let indexPath: string;
  const texts = ['[00:00:00.001] one\n', '[00:00:00.002] two\n', '[00:00:00.003] three\n', '[00:00:00.004] four\n', '[00:00:00.005] five\n'];
  const records: IndexRecord[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fp-reader-'));
    logPath = join(dir, 'job.log');
    indexPath = join(dir, 'job.idx');
    let offset = 0;
    texts.forEach((t, i) => {
      records.push({ seq: i + 1, ts: 1000 + i, offset, length: Buffer.byteLength(t), stream: LogStream.Stdout, level: LogLevel.Info, flags: 0 });
      offset += Buffer.byteLength(t);
    });
    const index = Buffer.alloc(records.length * INDEX_RECORD_BYTES);
    records.forEach((r, i) => writeIndexRecord(r, index, i * INDEX_RECORD_BYTES));
    await writeFile(logPath, texts.join(''));
    // A record cut short at the end (a write in progress) is not read.
    await writeFile(indexPath, Buffer.concat([index, Buffer.alloc(INDEX_RECORD_BYTES - 1, 7)]));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  describe('readIndexAfter', () => {
    it('reads the records after a seq, up to the end of the index', async () => {
      expect(await readIndexAfter(indexPath, 0, 100)).toEqual(records);
      expect(await readIndexAfter(indexPath, 2, 100)).toEqual(records.slice(2));
      expect(await readIndexAfter(indexPath, 4, 100)).toEqual(records.slice(4));
      expect(await readIndexAfter(indexPath, 5, 100)).toEqual([]);
      expect(await readIndexAfter(indexPath, 50, 100)).toEqual([]);
    });

    it('reads at most `max` records', async () => {
      expect(await readIndexAfter(indexPath, 0, 2)).toEqual(records.slice(0, 2));
      expect(await readIndexAfter(indexPath, 1, 3)).toEqual(records.slice(1, 4));
      expect(await readIndexAfter(indexPath, 1, 0)).toEqual([]);
    });

    it('treats a negative or fractional seq as the start, or the seq below it', async () => {
      expect(await readIndexAfter(indexPath, -3, 2)).toEqual(records.slice(0, 2));
      expect(await readIndexAfter(indexPath, 2.7, 1)).toEqual([records[2]]);
    });

    it('finds a seq by binary search when the index has a gap (a head_tail log after its marker)', async () => {
      const gapped = join(dir, 'gap.idx');
      const seqs = [1, 2, 3, 4, 40, 41, 42];
      const index = Buffer.alloc(seqs.length * INDEX_RECORD_BYTES);
      seqs.forEach((seq, i) =>
        writeIndexRecord({ seq, ts: seq, offset: i, length: 1, stream: LogStream.Stdout, level: LogLevel.Info, flags: 0 }, index, i * INDEX_RECORD_BYTES),
      );
      await writeFile(gapped, index);
      const after = async (seq: number, max = 100) => (await readIndexAfter(gapped, seq, max)).map((r) => r.seq);
      expect(await after(0)).toEqual(seqs);
      expect(await after(3)).toEqual([4, 40, 41, 42]);
      expect(await after(4, 2)).toEqual([40, 41]);
      for (const inGap of [5, 6, 20, 38, 39]) expect([inGap, await after(inGap)]).toEqual([inGap, [40, 41, 42]]);
      expect(await after(40)).toEqual([41, 42]);
      expect(await after(41)).toEqual([42]);
      expect(await after(42)).toEqual([]);
      expect(await after(1000)).toEqual([]);
    });

    it('fails for a missing index', async () => {
      await expect(readIndexAfter(join(dir, 'none.idx'), 0, 1)).rejects.toThrow(/ENOENT/);
    });
  });

  describe('readLinesOf', () => {
    it('returns the stored bytes of each record, from anywhere in the file', async () => {
      expect(await readLinesOf(logPath, [])).toEqual([]);
      expect((await readLinesOf(logPath, records)).map(String)).toEqual(texts);
      expect((await readLinesOf(logPath, records.slice(2, 4))).map(String)).toEqual(texts.slice(2, 4));
      expect((await readLinesOf(logPath, [records[4]])).map(String)).toEqual([texts[4]]);
    });

    it('readSpanOf: the same bytes in one buffer, each record at its offset less the first one', async () => {
      expect((await readSpanOf(logPath, [])).length).toBe(0);
      const span = await readSpanOf(logPath, records.slice(1, 4));
      expect(span.toString()).toBe(texts.slice(1, 4).join(''));
      const from = records[1].offset;
      expect(records.slice(1, 4).map((r) => span.toString('utf8', r.offset - from, r.offset - from + r.length))).toEqual(texts.slice(1, 4));
      const beyond = { ...records[4], offset: records[4].offset + 10 };
      await expect(readSpanOf(logPath, [records[3], beyond])).rejects.toThrow(`short read of ${logPath}`);
    });

    it('refuses records that point past the end of the file', async () => {
      const beyond = { ...records[4], offset: records[4].offset + 10 };
      await expect(readLinesOf(logPath, [records[3], beyond])).rejects.toThrow(`short read of ${logPath}`);
    });

    it('closes the files it opens, on success and on failure', async () => {
      const before = await openFds();
      for (let i = 0; i < 20; i++) {
        await readIndexAfter(indexPath, 0, 5);
        await readIndexAfter(indexPath, 9, 5);
        await readLinesOf(logPath, records);
        await readLinesOf(logPath, [{ ...records[0], length: 10_000 }]).catch(() => undefined);
      }
      expect(await openFds()).toBe(before);
    });
  });
});
