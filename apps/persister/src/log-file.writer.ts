import { LogLevel, LogLine, LogStream } from '@flashpods/contracts';
import {
  detectLevel,
  encodeLines,
  formatTimePrefix,
  LINE_HEADER_BYTES,
  storedLineBytes,
  TIME_PREFIX_BYTES,
  INDEX_RECORD_BYTES,
  IndexFlags,
  indexFileName,
  logFileName,
  readIndexRecord,
  truncationMarkerText,
  writeIndexRecord,
} from '@flashpods/log-format';
import { constants } from 'node:fs';
import { FileHandle, open } from 'node:fs/promises';
import { join } from 'node:path';

/** Lines as they travel, encoded by the chunk codec. */
export interface EncodedChunk {
  data: Buffer;
  firstSeq: number;
  count: number;
}

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
 * Not O_APPEND (Node's 'a'/'a+'): with it every write goes to the end whatever position it names.
 * Positional writes are what make a second writer harmless, see {@link LogFileWriter}.
 */
const OPEN_FLAGS = constants.O_RDWR | constants.O_CREAT;

/**
 * Writes one job's lines to `{job_id}.log` (seed-000 format) and their records to `{job_id}.idx`.
 *
 * Every write goes to an explicit position: log bytes at the committed size, index records at
 * `lines × 32`. The bytes stored for seq N are a function of the lines before it only, so a writer
 * that repeats a batch (a retry, or a stale owner that lost its lease between its check and its
 * write) rewrites identical bytes at identical offsets instead of appending a second copy.
 * Idempotent by seq too: a line at or below `lastSeq` is skipped.
 *
 * The files only ever hold committed state: a write that fails (ENOSPC, EIO) cuts both files back
 * to the last committed size before it rethrows, and the state stays where it was, so a retry
 * writes the same batch at the same place. On open, anything past the last complete index record
 * (a write cut short by a crash) is cut off the same way.
 */
export class LogFileWriter {
  private constructor(
    private readonly log: FileHandle,
    private readonly index: FileHandle,
    private readonly maxBytes: number,
    private state: LogFileState,
    private readonly mayRepair: () => boolean,
  ) {
    this.marker = Buffer.from(truncationMarkerText(maxBytes));
  }

  private readonly marker: Buffer;
  private lastTs = Number.NaN;
  private lastPrefix = Buffer.alloc(0);

  /**
   * `mayRepair` is asked before a failed write cuts the files back: a writer that is no longer the
   * job's owner must not shorten files its successor has written further.
   */
  static async open(dir: string, jobId: string, maxBytes: number, mayRepair: () => boolean = () => true): Promise<LogFileWriter> {
    const log = await open(join(dir, logFileName(jobId)), OPEN_FLAGS, 0o644);
    const index = await open(join(dir, indexFileName(jobId)), OPEN_FLAGS, 0o644);
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
    return new LogFileWriter(log, index, maxBytes, state, mayRepair);
  }

  get current(): Readonly<LogFileState> {
    return this.state;
  }

  /** Writes the lines not yet written, in one write to each file. Returns how many it wrote. */
  async append(lines: readonly LogLine[]): Promise<number> {
    return lines.length ? this.appendChunks([{ data: encodeLines(lines), firstSeq: lines[0].seq, count: lines.length }]) : 0;
  }

  /**
   * The same for encoded chunks as they come off the stream, without decoding them into objects:
   * the hot path. Consecutive chunks go out in one write to each file.
   */
  async appendChunks(chunks: readonly EncodedChunk[]): Promise<number> {
    let capacity = 0;
    let lineCount = 0;
    for (const c of chunks) {
      // A stored line is its encoded size + 3 (a 15-byte prefix and a newline for a 13-byte header).
      capacity += c.data.length + 3 * c.count;
      lineCount += c.count;
    }
    const out = Buffer.allocUnsafe(capacity + storedLineBytes(this.marker.length));
    const index = Buffer.allocUnsafe(lineCount * INDEX_RECORD_BYTES);
    let o = 0;
    let records = 0;
    const next = { ...this.state };
    for (const { data, firstSeq } of chunks) {
      for (let at = 0, seq = firstSeq; at < data.length; seq++) {
        if (at + LINE_HEADER_BYTES > data.length) throw new Error(`truncated line header at byte ${at}`);
        const stream = data[at] as LogStream;
        const ts = data.readDoubleBE(at + 1);
        const len = data.readUInt32BE(at + 9);
        const start = at + LINE_HEADER_BYTES;
        at = start + len;
        if (at > data.length) throw new Error(`line of ${len} bytes overruns its chunk`);
        if (seq <= next.lastSeq) continue;
        if (seq !== next.lastSeq + 1) throw new Error(`gap in log: expected seq ${next.lastSeq + 1}, got ${seq}`);
        next.lastSeq = seq;
        if (next.truncated) continue;
        const prefix = this.prefixFor(ts);
        let length = storedLineBytes(len);
        let level: LogLevel;
        let flags = 0;
        let recordStream = stream;
        // The runner applies the same cap and sends the marker itself; the check here keeps the
        // file within the cap whatever arrives.
        const isMarker = stream === LogStream.System && len === this.marker.length && this.marker.equals(data.subarray(start, at));
        prefix.copy(out, o);
        if (isMarker || next.bytes + length > this.maxBytes) {
          this.marker.copy(out, o + TIME_PREFIX_BYTES);
          length = storedLineBytes(this.marker.length);
          flags = IndexFlags.Marker;
          recordStream = LogStream.System;
          level = LogLevel.Warn;
          next.truncated = true;
        } else {
          data.copy(out, o + TIME_PREFIX_BYTES, start, at);
          level = detectLevel(stream, data, start, at);
        }
        out[o + length - 1] = 0x0a;
        writeIndexRecord({ seq, ts, offset: next.bytes, length, stream: recordStream, level, flags }, index, records * INDEX_RECORD_BYTES);
        o += length;
        records++;
        next.bytes += length;
        next.lines += 1;
      }
    }
    if (records > 0) await this.commit(out.subarray(0, o), index.subarray(0, records * INDEX_RECORD_BYTES));
    this.state = next;
    return records;
  }

  /**
   * Log first, index second: a crash between them leaves lines the index does not know, which
   * open() cuts off and the stream delivers again. A failed write is undone here.
   */
  private async commit(lines: Buffer, records: Buffer): Promise<void> {
    try {
      await writeAt(this.log, lines, this.state.bytes);
      await writeAt(this.index, records, this.state.lines * INDEX_RECORD_BYTES);
    } catch (err) {
      if (this.mayRepair()) await this.cutBack().catch(() => undefined);
      throw err;
    }
  }

  /** Shortens both files to the committed state (never lengthens them: that would write zeros). */
  private async cutBack(): Promise<void> {
    const logSize = this.state.bytes;
    const indexSize = this.state.lines * INDEX_RECORD_BYTES;
    if ((await this.log.stat()).size > logSize) await this.log.truncate(logSize);
    if ((await this.index.stat()).size > indexSize) await this.index.truncate(indexSize);
  }

  /** Lines read together share a timestamp: their prefix is formatted once. */
  private prefixFor(ts: number): Buffer {
    if (ts !== this.lastTs) {
      this.lastTs = ts;
      this.lastPrefix = Buffer.from(formatTimePrefix(ts), 'latin1');
    }
    return this.lastPrefix;
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.log.close(), this.index.close()]);
  }
}

/** `buf` at `position`, all of it: a write may store only part (the disk filling up mid-write). */
async function writeAt(file: FileHandle, buf: Buffer, position: number): Promise<void> {
  for (let done = 0; done < buf.length; ) {
    const { bytesWritten } = await file.write(buf, done, buf.length - done, position + done);
    if (bytesWritten === 0) throw new Error(`wrote 0 of ${buf.length - done} bytes at ${position + done}`);
    done += bytesWritten;
  }
}
