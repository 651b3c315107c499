import { LogLevel, LogLine, LogStream } from '@flashpods/contracts';
import {
  detectLevel,
  formatTimePrefix,
  INDEX_RECORD_BYTES,
  IndexFlags,
  indexFileName,
  logFileName,
  readIndexRecord,
  truncationMarkerText,
  writeIndexRecord,
} from '@flashpods/log-format';
import { FileHandle, open } from 'node:fs/promises';
import { join } from 'node:path';

const NEWLINE = Buffer.from('\n');

export interface LogFileState {
  /** Size of the log file. */
  bytes: number;
  /** Lines in the file, the truncation marker included. */
  lines: number;
  /** Seq of the last line taken (written, or replaced by the marker). */
  lastSeq: number;
  truncated: boolean;
}

/**
 * Appends one job's lines to `{job_id}.log` (seed-000 format) and their records to `{job_id}.idx`.
 * Idempotent by seq: a line at or below `lastSeq` is skipped, so re-delivered chunks never
 * duplicate. On open, anything past the last complete index record (a write cut short by a crash)
 * is cut off, so the two files always agree.
 */
export class LogFileWriter {
  private constructor(
    private readonly log: FileHandle,
    private readonly index: FileHandle,
    private readonly maxBytes: number,
    private state: LogFileState,
  ) {
    this.marker = Buffer.from(truncationMarkerText(maxBytes));
  }

  private readonly marker: Buffer;

  static async open(dir: string, jobId: string, maxBytes: number): Promise<LogFileWriter> {
    const log = await open(join(dir, logFileName(jobId)), 'a+');
    const index = await open(join(dir, indexFileName(jobId)), 'a+');
    const indexSize = (await index.stat()).size;
    const records = Math.floor(indexSize / INDEX_RECORD_BYTES);
    const state: LogFileState = { bytes: 0, lines: records, lastSeq: 0, truncated: false };
    if (records > 0) {
      const buf = Buffer.alloc(INDEX_RECORD_BYTES);
      await index.read(buf, 0, INDEX_RECORD_BYTES, (records - 1) * INDEX_RECORD_BYTES);
      const last = readIndexRecord(buf, 0);
      state.bytes = last.offset + last.length;
      state.lastSeq = last.seq;
      state.truncated = (last.flags & IndexFlags.Marker) !== 0;
    }
    if (indexSize !== records * INDEX_RECORD_BYTES) await index.truncate(records * INDEX_RECORD_BYTES);
    if ((await log.stat()).size !== state.bytes) await log.truncate(state.bytes);
    return new LogFileWriter(log, index, maxBytes, state);
  }

  get current(): Readonly<LogFileState> {
    return this.state;
  }

  /** Writes the lines not yet written, in one append to each file. Returns how many it wrote. */
  async append(lines: readonly LogLine[]): Promise<number> {
    const logParts: Buffer[] = [];
    const records: Buffer[] = [];
    const next = { ...this.state };
    for (const line of lines) {
      if (line.seq <= next.lastSeq) continue;
      if (line.seq !== next.lastSeq + 1) {
        throw new Error(`gap in log: expected seq ${next.lastSeq + 1}, got ${line.seq}`);
      }
      next.lastSeq = line.seq;
      if (next.truncated) continue;
      const prefix = Buffer.from(formatTimePrefix(line.ts));
      let length = prefix.length + line.text.length + 1;
      let flags = 0;
      let stream = line.stream;
      let level: LogLevel;
      // The runner applies the same cap and sends the marker itself; the check here keeps the
      // file within the cap whatever arrives.
      const isMarker = line.stream === LogStream.System && line.text.equals(this.marker);
      if (isMarker || next.bytes + length > this.maxBytes) {
        const marker = this.marker;
        logParts.push(prefix, marker, NEWLINE);
        length = prefix.length + marker.length + 1;
        flags = IndexFlags.Marker;
        stream = LogStream.System;
        level = LogLevel.Warn;
        next.truncated = true;
      } else {
        logParts.push(prefix, line.text, NEWLINE);
        level = detectLevel(line.stream, line.text);
      }
      const record = Buffer.allocUnsafe(INDEX_RECORD_BYTES);
      writeIndexRecord({ seq: line.seq, ts: line.ts, offset: next.bytes, length, stream, level, flags }, record, 0);
      records.push(record);
      next.bytes += length;
      next.lines += 1;
    }
    if (records.length > 0) {
      // Log first, index second: a crash between them leaves lines the index does not know,
      // which open() cuts off and the stream delivers again.
      await this.log.appendFile(Buffer.concat(logParts));
      await this.index.appendFile(Buffer.concat(records));
    }
    this.state = next;
    return records.length;
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.log.close(), this.index.close()]);
  }
}
