import { LogKeep, LogLevel, LogLine, LogStream } from '@flashpods/contracts';
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
  IndexRecord,
  readIndexRecord,
  TailHead,
  truncationMarkerText,
  setIndexRecord,
  bytesOf,
  viewOf,
} from '@flashpods/log-format';
import { constants } from 'node:fs';
import { FileHandle, open } from 'node:fs/promises';
import { join } from 'node:path';
import { TailSegments, TailLine, writeAt } from './tail-segments';

/** Lines as they travel, encoded by the chunk codec. */
export interface EncodedChunk {
  data: Buffer;
  firstSeq: number;
  count: number;
}

export interface LogFileState {
  /** Size of the log file (for a `head_tail` job past its head: plus its tail segments). */
  bytes: number;
  /** Lines in the file, the truncation marker included (and, past the head, in the segments). */
  lines: number;
  /** Seq of the last line taken (written, or replaced by the marker). */
  lastSeq: number;
  /** Lines were, or (a `head_tail` tail over its budget) will be, dropped. */
  truncated: boolean;
}

export interface LogFileWriterOptions {
  /** The job's `log_keep`; `head` by default. */
  keep?: LogKeep;
  /**
   * Asked before a failed write cuts the files back: a writer that is no longer the job's owner
   * must not shorten files its successor has written further.
   */
  mayRepair?: () => boolean;
}

/**
 * Where new lines go. `head`: the main files. `tail` (`head_tail` only): the tail segments, until
 * compose. `closed`: nowhere (past the marker of a `head` log; after compose).
 */
type Phase = 'head' | 'tail' | 'closed';

/**
 * Not O_APPEND (Node's 'a'/'a+'): with it every write goes to the end whatever position it names.
 * Positional writes are what make a second writer harmless, see {@link LogFileWriter}.
 */
const OPEN_FLAGS = constants.O_RDWR | constants.O_CREAT;

// Bound once at load: a name imported from a package's index is read through a getter on each use
// (how TypeScript compiles re-exports), and appendChunks() runs its loop for every line.
const HEADER_BYTES = LINE_HEADER_BYTES;
const PREFIX_BYTES = TIME_PREFIX_BYTES;
const RECORD_BYTES = INDEX_RECORD_BYTES;
const storedBytes = storedLineBytes;
const levelOf = detectLevel;
const setRecord = setIndexRecord;
const SYSTEM = LogStream.System;
const MARKER_FLAG = IndexFlags.Marker;
const WARN = LogLevel.Warn;
const HEAD_TAIL = LogKeep.HeadTail;

/**
 * Output buffers of appendChunks, reused: a fresh one per batch is memory outside the JS heap,
 * and V8 answers a steady flow of that with a full garbage collection every ~100 ms (measured
 * under the ingest flood). Shared by every writer of the process, a batch takes one and gives it
 * back; at most SCRATCH_KEPT of at most SCRATCH_MAX_BYTES are kept, so the pool stays bounded
 * however many jobs the persister owns. A larger batch gets a buffer of its own.
 *
 * Only the first SCRATCH_KEPT buffers out at once are pool-sized (SCRATCH_MIN_BYTES at least):
 * the others would not be kept, so they are sized to their batch. With a hundred jobs each
 * printing now and then, a round applies one small batch for each of up to 64 jobs at once, and
 * a pool-sized buffer for each was 32 MB outside the heap per round, thrown away: the persister
 * spent 20 of its 47 CPU seconds in the fan-out bench collecting garbage.
 */
const SCRATCH_KEPT = 2;
const SCRATCH_MIN_BYTES = 256 * 1024;
const SCRATCH_MAX_BYTES = 4 * 1024 * 1024;
const scratch: Buffer[] = [];
/** Buffers taken and not yet given back. */
let scratchOut = 0;

function takeScratch(size: number): Buffer {
  scratchOut++;
  for (let i = scratch.length - 1; i >= 0; i--) {
    if (scratch[i].length >= size) return scratch.splice(i, 1)[0];
  }
  const pooled = scratchOut <= SCRATCH_KEPT && size <= SCRATCH_MAX_BYTES;
  return Buffer.allocUnsafe(pooled ? Math.max(size, SCRATCH_MIN_BYTES) : size);
}

function giveScratch(buf: Buffer): void {
  scratchOut--;
  if (buf.length < SCRATCH_MIN_BYTES || buf.length > SCRATCH_MAX_BYTES) return;
  if (scratch.length >= SCRATCH_KEPT) {
    // Keep the larger ones: they serve any batch the smaller would.
    let smallest = 0;
    for (let i = 1; i < scratch.length; i++) if (scratch[i].length < scratch[smallest].length) smallest = i;
    if (scratch[smallest].length >= buf.length) return;
    scratch.splice(smallest, 1);
  }
  scratch.push(buf);
}

/**
 * The time prefix of the lines being written, kept as words: lines read together share a
 * timestamp, so it is formatted once and then written with five stores per line (a 15-byte loop
 * cost as much as copying the line's own text).
 */
class TimePrefix {
  private ts = Number.NaN;
  private w0 = 0;
  private w1 = 0;
  private w2 = 0;
  private h = 0;
  private b = 0;

  /** Writes `[HH:MM:SS.mmm] ` for `ts` at `at` (PREFIX_BYTES bytes). */
  write(ts: number, out: DataView, at: number): void {
    if (ts !== this.ts) this.format(ts);
    out.setUint32(at, this.w0);
    out.setUint32(at + 4, this.w1);
    out.setUint32(at + 8, this.w2);
    out.setUint16(at + 12, this.h);
    out.setUint8(at + 14, this.b);
  }

  private format(ts: number): void {
    const v = viewOf(Buffer.from(formatTimePrefix(ts), 'latin1'));
    this.ts = ts;
    this.w0 = v.getUint32(0);
    this.w1 = v.getUint32(4);
    this.w2 = v.getUint32(8);
    this.h = v.getUint16(12);
    this.b = v.getUint8(14);
  }
}

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
 *
 * `log_keep: head_tail`: lines go to the main files while they fit half of the cap (the head);
 * from the first that does not, every line goes to the tail segments ({@link TailSegments}, which
 * also says how much disk they may take), and {@link finish}, on the job's terminal status, writes
 * the marker and the last lines that fit the rest of the cap after the head. A log that fits the
 * cap whole is stored exactly as `head` would store it.
 *
 * Disk of a running `head_tail` job (C = LOG_MAX_BYTES, L = LOG_LINE_MAX_BYTES + 16, the largest
 * stored line): head + segments stay below C + 2 × (C/8 + L) bytes of log data; during compose
 * the kept end (≤ C − head) is in the main log too, until the segments go. Each file's index
 * takes 32 bytes per line beside it.
 */
export class LogFileWriter {
  private constructor(
    private readonly dir: string,
    private readonly jobId: string,
    private readonly log: FileHandle,
    private readonly index: FileHandle,
    private readonly maxBytes: number,
    private readonly keep: LogKeep,
    /** Size and records of the main files. */
    private main: { bytes: number; lines: number },
    private lastSeq: number,
    private phase: Phase,
    private tail: TailSegments | undefined,
    private readonly mayRepair: () => boolean,
  ) {
    this.marker = Buffer.from(truncationMarkerText(maxBytes));
  }

  private readonly marker: Buffer;
  private readonly prefix = new TimePrefix();
  /** Set by a `head` log's marker, or by compose when it dropped lines. */
  private markerWritten = false;

  /** The head of a `head_tail` log takes at most this many bytes. */
  private static headBytes(maxBytes: number): number {
    return Math.floor(maxBytes / 2);
  }

  /** Size of a tail segment: a quarter of the tail's half of the cap. */
  static segmentBytes(maxBytes: number): number {
    return Math.max(1, Math.ceil((maxBytes - LogFileWriter.headBytes(maxBytes)) / 4));
  }

  static async open(dir: string, jobId: string, maxBytes: number, options: LogFileWriterOptions = {}): Promise<LogFileWriter> {
    const keep = options.keep ?? LogKeep.Head;
    const mayRepair = options.mayRepair ?? (() => true);
    const log = await open(join(dir, logFileName(jobId)), OPEN_FLAGS, 0o644);
    const index = await open(join(dir, indexFileName(jobId)), OPEN_FLAGS, 0o644);
    const indexSize = (await index.stat()).size;
    let records = Math.floor(indexSize / INDEX_RECORD_BYTES);
    let bytes = 0;
    let lastSeq = 0;
    let flags = 0;
    if (records > 0) {
      const buf = Buffer.alloc(INDEX_RECORD_BYTES);
      await index.read(buf, 0, INDEX_RECORD_BYTES, (records - 1) * INDEX_RECORD_BYTES);
      const last = readIndexRecord(buf, 0);
      bytes = last.offset + last.length;
      lastSeq = last.seq;
      flags = last.flags;
    }
    const truncated = (flags & (IndexFlags.Marker | IndexFlags.Tail)) !== 0;
    let phase: Phase = truncated ? 'closed' : 'head';
    let tail: TailSegments | undefined;
    if (keep === LogKeep.HeadTail) {
      tail = await TailSegments.open(dir, jobId, (h) => maxBytes - h.bytes, LogFileWriter.segmentBytes(maxBytes), mayRepair);
      if (tail) {
        // Past the head: whatever follows it in the main files is a compose cut short, done again at the end.
        records = tail.head.lines;
        bytes = tail.head.bytes;
        lastSeq = tail.lastSeq;
        phase = 'tail';
      }
    }
    if (indexSize !== records * INDEX_RECORD_BYTES) await index.truncate(records * INDEX_RECORD_BYTES);
    if ((await log.stat()).size !== bytes) await log.truncate(bytes);
    const w = new LogFileWriter(dir, jobId, log, index, maxBytes, keep, { bytes, lines: records }, lastSeq, phase, tail, mayRepair);
    w.markerWritten = truncated;
    return w;
  }

  get current(): Readonly<LogFileState> {
    const t = this.phase === 'tail' ? this.tail : undefined;
    return {
      bytes: this.main.bytes + (t?.bytes ?? 0),
      lines: this.main.lines + (t?.lines ?? 0),
      lastSeq: this.lastSeq,
      truncated: this.markerWritten || (t?.truncated ?? false),
    };
  }

  /** Tail segments on disk (0 outside a `head_tail` tail phase). */
  get tailSegmentCount(): number {
    return this.phase === 'tail' ? (this.tail?.segmentCount ?? 0) : 0;
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
    const out = takeScratch(capacity + storedBytes(this.marker.length));
    const index = takeScratch(lineCount * RECORD_BYTES);
    try {
      return await this.encodeAndWrite(chunks, out, index);
    } finally {
      giveScratch(out);
      giveScratch(index);
    }
  }

  /** appendChunks' work, into `out` (room for every line and a marker) and `index` (a record per line). */
  private async encodeAndWrite(chunks: readonly EncodedChunk[], out: Buffer, index: Buffer): Promise<number> {
    const headTail = this.keep === HEAD_TAIL;
    const headMax = headTail ? LogFileWriter.headBytes(this.maxBytes) : this.maxBytes;
    let o = 0;
    let records = 0;
    // Lines for the tail segments: their bytes follow the main ones in `out`.
    const tailLines: TailLine[] = [];
    let tailHead: TailHead | undefined;
    let lastSeq = this.lastSeq;
    let phase = this.phase;
    let bytes = this.main.bytes;
    let marker = this.markerWritten;
    const outView = viewOf(out);
    const indexView = viewOf(index);
    for (const { data, firstSeq } of chunks) {
      const view = viewOf(data);
      for (let at = 0, seq = firstSeq; at < data.length; seq++) {
        if (at + HEADER_BYTES > data.length) throw new Error(`truncated line header at byte ${at}`);
        const stream = data[at] as LogStream;
        const ts = view.getFloat64(at + 1);
        const len = view.getUint32(at + 9);
        const start = at + HEADER_BYTES;
        at = start + len;
        if (at > data.length) throw new Error(`line of ${len} bytes overruns its chunk`);
        if (seq <= lastSeq) continue;
        if (seq !== lastSeq + 1) throw new Error(`gap in log: expected seq ${lastSeq + 1}, got ${seq}`);
        lastSeq = seq;
        if (phase === 'closed') continue;
        let length = storedBytes(len);
        if (phase === 'head' && headTail && bytes + length > headMax) {
          // The first line past the head: it and every later line go to the tail.
          phase = 'tail';
          tailHead = { lines: this.main.lines + records, bytes, lastSeq: seq - 1, firstTs: ts };
        }
        if (phase === 'tail') {
          this.prefix.write(ts, outView, o);
          out.set(bytesOf(data, start, at), o + PREFIX_BYTES);
          out[o + length - 1] = 0x0a;
          const level = levelOf(stream, data, start, at);
          tailLines.push({ seq, ts, offset: o, length, stream, level, flags: 0 });
          o += length;
          continue;
        }
        let level: LogLevel;
        let flags = 0;
        let recordStream = stream;
        // The runner applies the same cap and sends the marker itself; the check here keeps the
        // file within the cap whatever arrives.
        const isMarker = !headTail && stream === SYSTEM && len === this.marker.length && this.marker.equals(data.subarray(start, at));
        this.prefix.write(ts, outView, o);
        if (isMarker || bytes + length > this.maxBytes) {
          this.marker.copy(out, o + PREFIX_BYTES);
          length = storedBytes(this.marker.length);
          flags = MARKER_FLAG;
          recordStream = SYSTEM;
          level = WARN;
          phase = 'closed';
          marker = true;
        } else {
          out.set(bytesOf(data, start, at), o + PREFIX_BYTES);
          level = levelOf(stream, data, start, at);
        }
        out[o + length - 1] = 0x0a;
        setRecord(indexView, records * RECORD_BYTES, seq, ts, bytes, length, recordStream, level, flags);
        o += length;
        records++;
        bytes += length;
      }
    }
    const mainBytes = bytes - this.main.bytes;
    if (records > 0) await this.commit(out.subarray(0, mainBytes), index.subarray(0, records * RECORD_BYTES));
    this.main = { bytes, lines: this.main.lines + records };
    this.markerWritten = marker;
    if (tailLines.length) {
      // Committed above: a failure here leaves the head as written, and a retry rewrites it in place.
      if (!this.tail) {
        this.tail = await TailSegments.create(this.dir, this.jobId, tailHead!, this.maxBytes - tailHead!.bytes, LogFileWriter.segmentBytes(this.maxBytes), this.mayRepair);
      }
      this.phase = 'tail';
      await this.tail.append(out, tailLines);
    }
    this.phase = phase;
    this.lastSeq = lastSeq;
    return records + tailLines.length;
  }

  /**
   * The job has ended: a `head_tail` log past its head gets its end composed after the head (see
   * {@link TailSegments.compose}); nothing is taken after this. Safe to call again, and for `head`.
   */
  async finish(): Promise<void> {
    if (this.phase !== 'tail' || !this.tail) return;
    const composed = await this.tail.compose(this.log, this.index, this.marker);
    this.main = { bytes: composed.bytes, lines: composed.lines };
    this.markerWritten = composed.truncated;
    this.tail = undefined;
    this.phase = 'closed';
  }

  /**
   * Log first, index second: a crash between them leaves lines the index does not know, which
   * open() cuts off and the stream delivers again. A failed write is undone here.
   */
  private async commit(lines: Buffer, records: Buffer): Promise<void> {
    try {
      await writeAt(this.log, lines, this.main.bytes);
      await writeAt(this.index, records, this.main.lines * INDEX_RECORD_BYTES);
    } catch (err) {
      if (this.mayRepair()) await this.cutBack().catch(() => undefined);
      throw err;
    }
  }

  /** Shortens both files to the committed state (never lengthens them: that would write zeros). */
  private async cutBack(): Promise<void> {
    const logSize = this.main.bytes;
    const indexSize = this.main.lines * INDEX_RECORD_BYTES;
    if ((await this.log.stat()).size > logSize) await this.log.truncate(logSize);
    if ((await this.index.stat()).size > indexSize) await this.index.truncate(indexSize);
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.log.close(), this.index.close(), this.tail?.close()]);
  }
}
