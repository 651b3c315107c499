import { LogLine, LogStream } from '@flashpods/contracts';
import { INDEX_RECORD_BYTES, readIndexAfter } from '@flashpods/log-format';
import { execFileSync } from 'node:child_process';
import { appendFile, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LogFileWriter } from './log-file.writer';

const T0 = Date.UTC(2026, 10, 20, 10, 30, 0, 123);
const lines = (first: number, n: number, text: (seq: number) => string): LogLine[] =>
  Array.from({ length: n }, (_, i) => ({ seq: first + i, ts: T0 + first + i, stream: LogStream.Stdout, text: Buffer.from(text(first + i)) }));

/** Fills the file system of `dir` until a write fails with ENOSPC; the filler file is `dir/fill`. */
async function fillDisk(dir: string): Promise<void> {
  const block = Buffer.alloc(512, 0x2e);
  for (;;) {
    try {
      await appendFile(join(dir, 'fill'), block);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOSPC') return;
      throw err;
    }
  }
}

/** Both files hold exactly the writer's committed state, and every record points inside the log. */
async function expectConsistent(dir: string, w: LogFileWriter): Promise<void> {
  const logSize = (await stat(join(dir, 'job.log'))).size;
  const idxSize = (await stat(join(dir, 'job.idx'))).size;
  expect([logSize, idxSize]).toEqual([w.current.bytes, w.current.lines * INDEX_RECORD_BYTES]);
  const records = await readIndexAfter(join(dir, 'job.idx'), 0, 100000);
  expect(records.map((r) => r.seq)).toEqual(Array.from({ length: records.length }, (_, i) => i + 1));
  let end = 0;
  for (const r of records) {
    expect(r.offset).toBe(end);
    end = r.offset + r.length;
  }
  expect(end).toBe(logSize);
}

/**
 * A real full disk: a 64 KiB tmpfs (needs root). ENOSPC arrives mid-write, after part of a batch
 * is already on disk, which is what the writer must take back.
 */
describe('LogFileWriter on a full disk', () => {
  let dir: string;
  let refDir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fp-writer-full-'));
    refDir = await mkdtemp(join(tmpdir(), 'fp-writer-ref-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir]);
  });
  afterAll(async () => {
    // Lazy: a writer a failed test left open must not keep the mount (and the test's tmpfs) around.
    execFileSync('umount', ['-l', dir]);
    await rm(dir, { recursive: true, force: true });
    await rm(refDir, { recursive: true, force: true });
  });
  afterEach(async () => {
    for (const f of ['job.log', 'job.idx', 'fill']) {
      await rm(join(dir, f), { force: true });
      await rm(join(refDir, f), { force: true });
    }
  });

  async function reference(batches: LogLine[][]): Promise<{ log: Buffer; idx: Buffer }> {
    const ref = await LogFileWriter.open(refDir, 'job', 1 << 20);
    for (const b of batches) await ref.append(b);
    await ref.close();
    return { log: await readFile(join(refDir, 'job.log')), idx: await readFile(join(refDir, 'job.idx')) };
  }

  it('a log write cut short by ENOSPC is taken back, the state kept, and the retry stores each line once', async () => {
    const batches = [lines(1, 10, (s) => `line ${s}`), lines(11, 300, (s) => `line ${s} of the flood`), lines(311, 5, (s) => `line ${s}`)];
    const w = await LogFileWriter.open(dir, 'job', 1 << 20);
    await w.append(batches[0]);
    const committed = { ...w.current };
    await fillDisk(dir);

    // ~9.6 KB: part of it fits in the log's last page, then the disk is full.
    await expect(w.append(batches[1])).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(w.current).toEqual(committed);
    await expectConsistent(dir, w);
    // Retrying on a disk still full changes nothing.
    await expect(w.append(batches[1])).rejects.toMatchObject({ code: 'ENOSPC' });
    await expectConsistent(dir, w);

    await rm(join(dir, 'fill'));
    expect(await w.append(batches[1])).toBe(300);
    expect(await w.append(batches[2])).toBe(5);
    await w.close();
    await expectConsistent(dir, w);
    const ref = await reference(batches);
    expect((await readFile(join(dir, 'job.log'))).equals(ref.log)).toBe(true);
    expect((await readFile(join(dir, 'job.idx'))).equals(ref.idx)).toBe(true);
  });

  it('an index write that fails after its lines reached the log takes those lines back too', async () => {
    // 128 records fill the index's first page exactly; their short lines leave room in the log's.
    const batches = [lines(1, 128, (s) => `l${s}`), lines(129, 10, (s) => `l${s}`)];
    const w = await LogFileWriter.open(dir, 'job', 1 << 20);
    await w.append(batches[0]);
    expect((await stat(join(dir, 'job.idx'))).size).toBe(4096);
    const committed = { ...w.current };
    await fillDisk(dir);

    await expect(w.append(batches[1])).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(w.current).toEqual(committed);
    await expectConsistent(dir, w);

    await rm(join(dir, 'fill'));
    expect(await w.append(batches[1])).toBe(10);
    await w.close();
    const ref = await reference(batches);
    expect((await readFile(join(dir, 'job.log'))).equals(ref.log)).toBe(true);
    expect((await readFile(join(dir, 'job.idx'))).equals(ref.idx)).toBe(true);
  });
});
