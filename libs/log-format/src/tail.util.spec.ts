import { mkdtemp, open, readdir, readlink, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readTail } from './tail.util';

describe('readTail', () => {
  let dir: string;
  beforeAll(async () => (dir = await mkdtemp(join(tmpdir(), 'fp-tail-'))));
  afterAll(() => rm(dir, { recursive: true, force: true }));

  async function fileWith(content: string | Buffer): Promise<string> {
    const path = join(dir, `${Math.random()}.log`);
    await writeFile(path, content);
    return path;
  }

  it('returns the last n lines, or all when fewer', async () => {
    const path = await fileWith('a\nb\nc\n');
    expect(await readTail(path, 2)).toEqual({ data: Buffer.from('b\nc\n'), lines: 2, totalBytes: 6 });
    expect(await readTail(path, 1)).toEqual({ data: Buffer.from('c\n'), lines: 1, totalBytes: 6 });
    expect(await readTail(path, 10)).toEqual({ data: Buffer.from('a\nb\nc\n'), lines: 3, totalBytes: 6 });
  });

  it('answers for an empty file and leaves out a line still being written', async () => {
    expect(await readTail(await fileWith(''), 5)).toEqual({ data: Buffer.alloc(0), lines: 0, totalBytes: 0 });
    const partial = await readTail(await fileWith('a\nb\npart'), 5);
    expect(partial.data.toString()).toBe('a\nb\n');
    expect(partial.lines).toBe(2);
  });

  it('crosses block boundaries with long and many lines', async () => {
    const lines = Array.from({ length: 20000 }, (_, i) => `line ${i} ${'x'.repeat(i % 97)}`);
    const path = await fileWith(lines.join('\n') + '\n');
    const t = await readTail(path, 10000);
    expect(t.lines).toBe(10000);
    expect(t.data.toString()).toBe(lines.slice(10000).join('\n') + '\n');
    const long = 'y'.repeat(300 * 1024);
    const t2 = await readTail(await fileWith(`first\n${long}\nlast\n`), 2);
    expect(t2.data.toString()).toBe(`${long}\nlast\n`);
  });

  it('finds a newline on either side of the first block read (16 KiB from the end) and of the next ones', async () => {
    // The last `n` complete lines, the slow way.
    const naive = (text: string, n: number) => {
      const complete = text.slice(0, text.lastIndexOf('\n') + 1);
      const lines = complete.split('\n').slice(0, -1);
      return lines.slice(Math.max(0, lines.length - n)).map((l) => `${l}\n`).join('');
    };
    for (const fromEnd of [16 * 1024 - 1, 16 * 1024, 16 * 1024 + 1, 80 * 1024, 80 * 1024 + 1]) {
      for (const last of ['z\n', 'z\npartial']) {
        // A newline `fromEnd` bytes before the end: the first byte of a block, or the last of the one before.
        const text = `${'a'.repeat(50)}\n${'b'.repeat(200 * 1024 - fromEnd - 52)}\n${'c'.repeat(fromEnd - 1 - last.length)}${last}`;
        expect(text.length - text.indexOf('\n', 51)).toBe(fromEnd);
        const path = await fileWith(text);
        for (const n of [1, 2, 3, 4]) {
          const t = await readTail(path, n);
          expect(t.data.toString()).toBe(naive(text, n));
          expect(t.totalBytes).toBe(text.length);
        }
      }
    }
    // An empty line whose two newlines are the first two bytes of the first block.
    const text = `${'a'.repeat(100)}\n\n${'c'.repeat(16 * 1024 - 5)}\nz\n`;
    expect(text.slice(text.length - 16 * 1024, text.length - 16 * 1024 + 3)).toBe('\n\nc');
    const path = await fileWith(text);
    for (const n of [2, 3, 4]) expect((await readTail(path, n)).data.toString()).toBe(naive(text, n));
  });

  it('counts an empty first line and a newline at the very start of the file', async () => {
    const path = await fileWith('\na\n');
    expect(await readTail(path, 5)).toEqual({ data: Buffer.from('\na\n'), lines: 2, totalBytes: 3 });
    expect(await readTail(path, 1)).toEqual({ data: Buffer.from('a\n'), lines: 1, totalBytes: 3 });
  });

  it('leaves out a line being written when only the last block is read', async () => {
    const path = await fileWith(`${'x'.repeat(100_000)}\na\nb\npartial`);
    expect(await readTail(path, 1)).toEqual({ data: Buffer.from('b\n'), lines: 1, totalBytes: 100_000 + 12 });
    expect((await readTail(path, 2)).data.toString()).toBe('a\nb\n');
  });

  it('fails rather than answer bytes it did not read when the file shrinks under it', async () => {
    const path = await fileWith('a\nb\nc\n');
    const fh = await open(path, 'r');
    const proto = Object.getPrototypeOf(fh) as { stat: () => Promise<unknown> };
    await fh.close();
    const realStat = proto.stat;
    // Cut short between its size and its read, as a writer taking back a failed write does.
    const spy = jest.spyOn(proto, 'stat').mockImplementationOnce(async function (this: unknown) {
      const s = await realStat.call(this);
      await truncate(path, 3);
      return s;
    });
    try {
      await expect(readTail(path, 2)).rejects.toThrow(new Error(`short read of ${path} at 0`));
    } finally {
      spy.mockRestore();
    }
  });

  it('closes the file it opens', async () => {
    const path = await fileWith('a\nb\n');
    // The descriptors open on this file, not the process's count (other tests in the worker open
    // and close their own meanwhile).
    const openOnIt = async () => {
      let n = 0;
      for (const fd of await readdir('/proc/self/fd')) if ((await readlink(`/proc/self/fd/${fd}`).catch(() => '')) === path) n++;
      return n;
    };
    for (let i = 0; i < 20; i++) await readTail(path, 1);
    expect(await openOnIt()).toBe(0);
    // The check sees an open descriptor when there is one.
    const held = await open(path, 'r');
    expect(await openOnIt()).toBe(1);
    await held.close();
  });
});
