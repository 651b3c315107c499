import { LogLevel, LogStream } from '@flashpods/contracts';
import { viewOf } from './bytes.util';

/**
 * One record per stored line, in the `{job_id}.idx` file beside `{job_id}.log`, in increasing seq.
 * Without a gap (every `head` log, and a `head_tail` log that fitted) record i (from 0) holds seq
 * i+1, so a seq is found by position; a `head_tail` log that was cut has one gap after its marker,
 * and a seq is then found by binary search (`readIndexAfter`).
 * Layout (32 bytes): seq f64, ts f64, offset f64, length u32, stream u8, level u8, flags u16.
 * `offset`/`length` locate the whole stored line (prefix and newline included) in the log file.
 */
export const INDEX_RECORD_BYTES = 32;

/**
 * `Marker`: the truncation marker line; its seq is that of the first line it stands for.
 * `Tail`: a line of a `head_tail` log kept after the marker (after the gap).
 */
export const IndexFlags = { Marker: 1, Tail: 2 } as const;

export interface IndexRecord {
  seq: number;
  ts: number;
  offset: number;
  length: number;
  stream: LogStream;
  level: LogLevel;
  flags: number;
}

export function writeIndexRecord(r: IndexRecord, out: Buffer, at: number): void {
  setIndexRecord(viewOf(out), at, r.seq, r.ts, r.offset, r.length, r.stream, r.level, r.flags);
}

/**
 * writeIndexRecord for a loop over many lines: the fields as arguments (no object per line) into
 * a DataView made once over the output (big-endian, DataView's default).
 */
export function setIndexRecord(
  view: DataView,
  at: number,
  seq: number,
  ts: number,
  offset: number,
  length: number,
  stream: LogStream,
  level: LogLevel,
  flags: number,
): void {
  view.setFloat64(at, seq);
  view.setFloat64(at + 8, ts);
  view.setFloat64(at + 16, offset);
  view.setUint32(at + 24, length);
  view.setUint8(at + 28, stream);
  view.setUint8(at + 29, level);
  view.setUint16(at + 30, flags);
}

export function readIndexRecord(buf: Buffer, at: number): IndexRecord {
  return {
    seq: buf.readDoubleBE(at),
    ts: buf.readDoubleBE(at + 8),
    offset: buf.readDoubleBE(at + 16),
    length: buf.readUInt32BE(at + 24),
    stream: buf.readUInt8(at + 28) as LogStream,
    level: buf.readUInt8(at + 29) as LogLevel,
    flags: buf.readUInt16BE(at + 30),
  };
}

export function logFileName(jobId: string): string {
  return `${jobId}.log`;
}

export function indexFileName(jobId: string): string {
  return `${jobId}.idx`;
}
