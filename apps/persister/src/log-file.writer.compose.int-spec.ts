import { LogKeep, LogLine, LogStream } from '@flashpods/contracts';
import { INDEX_RECORD_BYTES, IndexFlags, readIndexAfter } from '@flashpods/log-format';
import { spawn } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { LogFileWriter } from './log-file.writer';

const T0 = Date.UTC(2026, 10, 20, 10, 30, 0, 123);
const MAX = 16 << 20; // 16 MiB: an 8 MiB head, an 8 MiB tail
const lines = (first: number, n: number): LogLine[] =>
  Array.from({ length: n }, (_, i) => ({
    seq: first + i,
    ts: T0 + first + i,
    stream: i % 5 === 0 ? LogStream.Stderr : LogStream.Stdout,
    text: Buffer.from(`line ${first + i} ${'x'.repeat((first + i) % 97)}`),
  }));
/** ~40 MiB of lines: the head fills, then the tail rotates through many segments. */
const ALL = lines(1, 500_000);

/** Writes the lines, as the persister would, and stops before the terminal status (no compose). */
async function runUpToEnd(dir: string): Promise<void> {
  const w = await LogFileWriter.open(dir, 'job', MAX, { keep: LogKeep.HeadTail });
  for (let i = 0; i < ALL.length; i += 20_000) await w.append(ALL.slice(i, i + 20_000));
  await w.close();
}

async function finishIn(dir: string): Promise<void> {
  const w = await LogFileWriter.open(dir, 'job', MAX, { keep: LogKeep.HeadTail });
  await w.finish();
  await w.close();
}

/**
 * A child process composes with the built writer (apps/persister/dist) and is killed with SIGKILL
 * after its `afterWrites`-th file write (0: as soon as it says it starts). The child reports each
 * write and pauses 20 ms after it, so the kill lands at that point whatever the machine's load:
 * the engine of the crash is real (SIGKILL of a process mid-compose), only its moment is chosen.
 * Returns the size of the log when it was killed.
 */
async function killMidCompose(dir: string, afterWrites: number): Promise<{ logBytes: number; exited: boolean }> {
  const dist = resolve(__dirname, '../dist/log-file.writer.js');
  const script = `
    const fsp = require('node:fs/promises');
    const { LogFileWriter } = require(${JSON.stringify(dist)});
    (async () => {
      const probe = await fsp.open(${JSON.stringify(dist)});
      const proto = Object.getPrototypeOf(probe);
      await probe.close();
      const write = proto.write;
      proto.write = async function (...args) {
        const r = await write.apply(this, args);
        process.stdout.write('w\\n');
        await new Promise((res) => setTimeout(res, 20));
        return r;
      };
      const w = await LogFileWriter.open(${JSON.stringify(dir)}, 'job', ${MAX}, { keep: 'head_tail' });
      process.stdout.write('composing\\n');
      await w.finish();
      await w.close();
      process.stdout.write('done\\n');
    })();`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  await new Promise<void>((res, rej) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const writes = out.includes('composing') ? (out.slice(out.indexOf('composing')).match(/^w$/gm) ?? []).length : -1;
      if (writes >= afterWrites || out.includes('done')) {
        child.kill('SIGKILL');
        res();
      }
    });
    child.on('exit', () => rej(new Error(`child exited before composing: ${out}`)));
  });
  await new Promise((r) => child.once('exit', r));
  const logBytes = (await stat(join(dir, 'job.log'))).size;
  return { logBytes, exited: out.includes('done') };
}

describe('LogFileWriter head_tail compose (real files, a real kill -9)', () => {
  let root: string;
  let before: string;
  let reference: { log: Buffer; idx: Buffer };
  let headBytes: number;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'fp-compose-'));
    before = join(root, 'before');
    await mkdir(before);
    await runUpToEnd(before);
    headBytes = (await stat(join(before, 'job.log'))).size;
    const ref = join(root, 'ref');
    await cp(before, ref, { recursive: true });
    await finishIn(ref);
    reference = { log: await readFile(join(ref, 'job.log')), idx: await readFile(join(ref, 'job.idx')) };
  }, 120_000);
  afterAll(() => rm(root, { recursive: true, force: true }));

  it('the composed file: the head, the marker, the last lines that fit, indexed consistently', async () => {
    expect(headBytes).toBeLessThanOrEqual(MAX / 2);
    const records = await readIndexAfter(join(root, 'ref', 'job.idx'), 0, 10_000_000);
    expect(records.length * INDEX_RECORD_BYTES).toBe(reference.idx.length);
    let end = 0;
    for (const r of records) {
      if (r.offset !== end) throw new Error(`record of seq ${r.seq} at ${r.offset}, expected ${end}`);
      end += r.length;
    }
    expect(end).toBe(reference.log.length);
    const marker = records.findIndex((r) => r.flags & IndexFlags.Marker);
    const markerRec = records[marker];
    expect(reference.log.subarray(markerRec.offset, markerRec.offset + markerRec.length).toString()).toMatch(
      /^\[10:\d{2}:\d{2}\.\d{3}\] \[TRUNCATED - log exceeded 16 MB limit\]\n$/,
    );
    // Head: seqs 1..marker, consecutive; tail: consecutive up to the job's last line, flagged.
    expect(records.slice(0, marker).every((r, i) => r.seq === i + 1 && r.flags === 0)).toBe(true);
    expect(markerRec.seq).toBe(marker + 1);
    const tail = records.slice(marker + 1);
    expect(tail[tail.length - 1].seq).toBe(ALL.length);
    expect(tail.every((r, i) => r.seq === tail[0].seq + i && r.flags === IndexFlags.Tail)).toBe(true);
    const tailBytes = end - tail[0].offset;
    // The tail fits what the head left of the cap, and one more line would not.
    expect(tailBytes).toBeLessThanOrEqual(MAX - markerRec.offset);
    const before1 = ALL[tail[0].seq - 2];
    expect(tailBytes + 16 + before1.text.length).toBeGreaterThan(MAX - markerRec.offset);
    // Each kept line is the job's own line.
    const lastText = reference.log.subarray(tail[tail.length - 1].offset + 15, end - 1).toString();
    expect(lastText).toBe(ALL[ALL.length - 1].text.toString());
    expect(await readdir(join(root, 'ref'))).toEqual(['job.idx', 'job.log']);
  });

  it('killed with SIGKILL at points through compose, reopened and finished: the same files every time', async () => {
    const landed: string[] = [];
    for (const writes of [0, 1, 2, 3, 5, 8, 13]) {
      const dir = join(root, `kill-${writes}`);
      await cp(before, dir, { recursive: true });
      const killed = await killMidCompose(dir, writes);
      const headLeft = await stat(join(dir, 'job.tail', 'head')).then(() => true, () => false);
      landed.push(killed.exited ? 'after' : headLeft && killed.logBytes > headBytes ? 'mid' : headLeft ? 'before' : 'committed');
      await finishIn(dir);
      expect([writes, (await readFile(join(dir, 'job.log'))).equals(reference.log)]).toEqual([writes, true]);
      expect([writes, (await readFile(join(dir, 'job.idx'))).equals(reference.idx)]).toEqual([writes, true]);
      expect(await readdir(dir)).toEqual(['job.idx', 'job.log']);
    }
    // At least one kill landed with compose half done (the log past the head, `head` still there).
    expect(landed).toContain('mid');
  });

  it('a compose cut short at any point of its writes is redone identically', async () => {
    // Every state a crash can leave: the log written up to some byte past the head and the index
    // up to some record, `head` still there (it goes only once both are complete).
    const cuts = [1, 57, 4096, 1 << 20, reference.log.length - headBytes - 1];
    for (const cut of cuts) {
      const dir = join(root, `cut-${cut}`);
      await cp(before, dir, { recursive: true });
      const headIdx = (await stat(join(before, 'job.idx'))).size;
      await writeFile(join(dir, 'job.log'), reference.log.subarray(0, headBytes + cut));
      await writeFile(join(dir, 'job.idx'), reference.idx.subarray(0, headIdx + Math.floor(cut / 40) * INDEX_RECORD_BYTES + 7));
      await finishIn(dir);
      expect([cut, (await readFile(join(dir, 'job.log'))).equals(reference.log), (await readFile(join(dir, 'job.idx'))).equals(reference.idx)]).toEqual([cut, true, true]);
      expect(await readdir(dir)).toEqual(['job.idx', 'job.log']);
    }
  });

  it('after the commit point (head removed, directory still there), reopening keeps the composed files', async () => {
    const dir = join(root, 'committed');
    await cp(join(root, 'before'), dir, { recursive: true });
    await writeFile(join(dir, 'job.log'), reference.log);
    await writeFile(join(dir, 'job.idx'), reference.idx);
    await rm(join(dir, 'job.tail', 'head'));
    const w = await LogFileWriter.open(dir, 'job', MAX, { keep: LogKeep.HeadTail });
    expect(w.current).toEqual({ bytes: reference.log.length, lines: reference.idx.length / INDEX_RECORD_BYTES, lastSeq: ALL.length, truncated: true });
    await w.finish();
    await w.close();
    expect((await readFile(join(dir, 'job.log'))).equals(reference.log)).toBe(true);
    expect(await readdir(dir)).toEqual(['job.idx', 'job.log']);
  });
});
