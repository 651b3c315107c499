import { FileHandle, open } from 'node:fs/promises';
import { INDEX_RECORD_BYTES, IndexRecord, readIndexRecord } from './log-index';

/**
 * Index records with seq > afterSeq, at most `max` of them (fewer at the end of the index).
 * Records are in increasing seq but need not be consecutive (a `head_tail` log has a gap after its
 * marker): the record at the position a gapless index would put the seq at is tried first, and
 * if it is not the one, the first record past `afterSeq` is found by binary search.
 */
export async function readIndexAfter(indexPath: string, afterSeq: number, max: number): Promise<IndexRecord[]> {
  const fh = await open(indexPath, 'r');
  try {
    const size = (await fh.stat()).size;
    const total = Math.floor(size / INDEX_RECORD_BYTES);
    if (total === 0 || max <= 0) return [];
    const first = await firstRecordAfter(fh, total, Math.max(0, Math.floor(afterSeq)));
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

/** Position of the first of `total` records whose seq is > `afterSeq` (`total` when there is none). */
async function firstRecordAfter(fh: FileHandle, total: number, afterSeq: number): Promise<number> {
  const buf = Buffer.allocUnsafe(INDEX_RECORD_BYTES);
  const seqAt = async (i: number) => {
    const { bytesRead } = await fh.read(buf, 0, INDEX_RECORD_BYTES, i * INDEX_RECORD_BYTES);
    if (bytesRead !== INDEX_RECORD_BYTES) throw new Error(`short read of index record ${i}`);
    return buf.readDoubleBE(0);
  };
  const firstSeq = await seqAt(0);
  if (firstSeq > afterSeq) return 0;
  // Without a gap, seq afterSeq+1 is at this position.
  const guess = afterSeq + 1 - firstSeq;
  if (guess < total && (await seqAt(guess)) === afterSeq + 1) return guess; // seqs only increase: the one before is lower
  let lo = 1; // seq at lo-1 is <= afterSeq
  let hi = total; // seq at hi (if any) is > afterSeq
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((await seqAt(mid)) > afterSeq) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** The stored bytes of consecutive records (prefix and newline included), in one read. */
export async function readLinesOf(logPath: string, records: readonly IndexRecord[]): Promise<Buffer[]> {
  if (records.length === 0) return [];
  const from = records[0].offset;
  const buf = await readSpanOf(logPath, records);
  return records.map((r) => buf.subarray(r.offset - from, r.offset - from + r.length));
}

/**
 * The stored bytes of consecutive records in one buffer, in one read: record `r` is at
 * `r.offset - records[0].offset`. What `readLinesOf` reads, without a buffer per line.
 */
export async function readSpanOf(logPath: string, records: readonly IndexRecord[]): Promise<Buffer> {
  if (records.length === 0) return Buffer.alloc(0);
  const from = records[0].offset;
  const last = records[records.length - 1];
  const to = last.offset + last.length;
  const fh = await open(logPath, 'r');
  try {
    const buf = Buffer.allocUnsafe(to - from);
    const { bytesRead } = await fh.read(buf, 0, buf.length, from);
    if (bytesRead !== buf.length) throw new Error(`short read of ${logPath}`);
    return buf;
  } finally {
    await fh.close();
  }
}
