import { open } from 'node:fs/promises';

const BLOCK = 64 * 1024;
/** The first block read: enough for the default 100 lines of 80-odd bytes, without a 64 KiB buffer for each read. */
const FIRST_BLOCK = 16 * 1024;
const NEWLINE = 0x0a;

export interface Tail {
  /** The last lines, each ending in `\n`. */
  data: Buffer;
  lines: number;
  /** Size of the file when it was read. */
  totalBytes: number;
}

/**
 * The last `n` complete lines of a file, read backwards from its end in blocks: the cost depends
 * on the size of those lines, not of the file. Bytes after the last `\n` (a write in progress)
 * are left out.
 */
export async function readTail(path: string, n: number): Promise<Tail> {
  const fh = await open(path, 'r');
  try {
    const totalBytes = (await fh.stat()).size;
    const blocks: Buffer[] = [];
    let pos = totalBytes;
    let end = -1; // absolute offset just past the last newline
    let start = 0; // absolute offset of the first byte of the first line kept
    let newlines = 0;
    scan: while (pos > 0) {
      const len = Math.min(blocks.length === 0 ? FIRST_BLOCK : BLOCK, pos);
      pos -= len;
      const block = Buffer.allocUnsafe(len);
      const { bytesRead } = await fh.read(block, 0, len, pos);
      if (bytesRead !== len) throw new Error(`short read of ${path} at ${pos}`);
      blocks.unshift(block);
      for (let i = len; i > 0 && (i = block.lastIndexOf(NEWLINE, i - 1)) !== -1; ) {
        if (end === -1) {
          end = pos + i + 1;
          continue;
        }
        newlines++;
        if (newlines === n) {
          start = pos + i + 1;
          break scan;
        }
      }
    }
    if (end === -1) return { data: Buffer.alloc(0), lines: 0, totalBytes };
    const all = blocks.length === 1 ? blocks[0] : Buffer.concat(blocks);
    const data = all.subarray(start - pos, end - pos);
    return { data, lines: Math.min(n, newlines + 1), totalBytes };
  } finally {
    await fh.close();
  }
}
