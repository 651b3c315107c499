import { open } from 'node:fs/promises';
import { INDEX_RECORD_BYTES, IndexRecord, readIndexRecord } from './log-index';

/** Index records with seq > afterSeq, at most `max` of them (fewer at the end of the index). */
export async function readIndexAfter(indexPath: string, afterSeq: number, max: number): Promise<IndexRecord[]> {
  const fh = await open(indexPath, 'r');
  try {
    const size = (await fh.stat()).size;
    const total = Math.floor(size / INDEX_RECORD_BYTES);
    const first = Math.max(0, Math.floor(afterSeq));
    const count = Math.max(0, Math.min(max, total - first));
    if (count === 0) return [];
    const buf = Buffer.allocUnsafe(count * INDEX_RECORD_BYTES);
    const { bytesRead } = await fh.read(buf, 0, buf.length, first * INDEX_RECORD_BYTES);
    const records: IndexRecord[] = [];
    for (let at = 0; at + INDEX_RECORD_BYTES <= bytesRead; at += INDEX_RECORD_BYTES) {
      records.push(readIndexRecord(buf, at));
    }
    return records;
  } finally {
    await fh.close();
  }
}

/** The stored bytes of consecutive records (prefix and newline included), in one read. */
export async function readLinesOf(logPath: string, records: readonly IndexRecord[]): Promise<Buffer[]> {
  if (records.length === 0) return [];
  const from = records[0].offset;
  const last = records[records.length - 1];
  const to = last.offset + last.length;
  const fh = await open(logPath, 'r');
  try {
    const buf = Buffer.allocUnsafe(to - from);
    const { bytesRead } = await fh.read(buf, 0, buf.length, from);
    if (bytesRead !== buf.length) throw new Error(`short read of ${logPath}`);
    return records.map((r) => buf.subarray(r.offset - from, r.offset - from + r.length));
  } finally {
    await fh.close();
  }
}
