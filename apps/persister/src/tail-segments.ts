import { LogLevel, LogStream } from '@flashpods/contracts';
import {
  encodeTailHead,
  formatTimePrefix,
  INDEX_RECORD_BYTES,
  IndexFlags,
  IndexRecord,
  listTailSegments,
  readIndexRecord,
  segmentFileNames,
  storedLineBytes,
  TAIL_HEAD_FILE,
  TailHead,
  tailDirName,
  TIME_PREFIX_BYTES,
  setIndexRecord,
  viewOf,
  writeIndexRecord,
} from '@flashpods/log-format';
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { FileHandle, mkdir, open, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Not O_APPEND: every write names its position (see log-file.writer.ts). */
const OPEN_FLAGS = constants.O_RDWR | constants.O_CREAT;
/** Compose copies log bytes in pieces of this size and index records in blocks of this many. */
const COPY_BYTES = 1 << 20;
const COPY_RECORDS = 8192;

interface Segment {
  firstSeq: number;
  lastSeq: number;
  bytes: number;
  lines: number;
  log: string;
  index: string;
}

/** A line to store in the tail: its record's `offset` is where its bytes start in the batch buffer. */
export type TailLine = IndexRecord;

/** Where the main files stand after {@link TailSegments.compose}. */
export interface Composed {
  bytes: number;
  lines: number;
  truncated: boolean;
}

/**
 * The tail of a running `head_tail` job: every line past the head, in segment files under
 * `{job_id}.tail/` (layout in libs/log-format `tail-segments.ts`), of which only enough are kept
 * to hold the last `budget` bytes. When the job's terminal status arrives, {@link compose} writes
 * the marker and the last lines that fit the budget after the head in `{job_id}.log`/`.idx`.
 *
 * Disk: a segment takes lines while it holds less than `segmentBytes`, so it ends below
 * `segmentBytes + L` (L: the largest stored line, LOG_LINE_MAX_BYTES + 16). When a new segment
 * starts, the oldest ones are deleted while the others still hold `budget` bytes: those others are
 * then below `budget` (closed, they no longer grow), so the segments' log data stays below
 * `budget + 2 × (segmentBytes + L)`, with 32 index bytes per line beside it. During compose the
 * kept lines (at most `budget` + the marker) are in the main log as well, until the segments go.
 *
 * Crash safety: segments are written like the main files (bytes first, records second, each at
 * its position; open() cuts a half-written batch off). Compose only ever writes past the head
 * (whose size is in `head`), then removes `head` (the commit point), then the directory. A
 * writer opened while `head` exists cuts the main files back to the head and composes again from
 * the same segments, so a compose killed at any point ends with the same files.
 */
export class TailSegments {
  private current: { log: FileHandle; index: FileHandle } | undefined;

  private constructor(
    private readonly dir: string,
    readonly head: TailHead,
    private readonly budget: number,
    private readonly segmentBytes: number,
    private readonly segments: Segment[],
    private readonly mayRepair: () => boolean,
  ) {}

  /** Starts the tail: `head` is on disk before any segment. */
  static async create(
    logDir: string,
    jobId: string,
    head: TailHead,
    budget: number,
    segmentBytes: number,
    mayRepair: () => boolean,
  ): Promise<TailSegments> {
    const dir = join(logDir, tailDirName(jobId));
    await mkdir(dir, { recursive: true });
    const tmp = join(dir, `${TAIL_HEAD_FILE}.${randomBytes(4).toString('hex')}.tmp`);
    await writeFile(tmp, encodeTailHead(head));
    await rename(tmp, join(dir, TAIL_HEAD_FILE));
    return new TailSegments(dir, head, budget, segmentBytes, [], mayRepair);
  }

  /**
   * The tail as a previous writer left it, or undefined when there is none. A directory without
   * `head` is a compose that committed (or a start cut short): it is removed.
   */
  static async open(
    logDir: string,
    jobId: string,
    budgetFor: (head: TailHead) => number,
    segmentBytes: number,
    mayRepair: () => boolean,
  ): Promise<TailSegments | undefined> {
    const dir = join(logDir, tailDirName(jobId));
    const listed = await listTailSegments(dir);
    if (!listed) {
      await rm(dir, { recursive: true, force: true });
      return undefined;
    }
    for (const stray of listed.strays) await rm(stray, { force: true });
    const segments: Segment[] = [];
    for (const [i, files] of listed.segments.entries()) {
      const seg: Segment = { firstSeq: files.firstSeq, lastSeq: files.firstSeq - 1, bytes: 0, lines: 0, log: files.log, index: files.index };
      const index = await open(files.index, 'r+');
      const log = await open(files.log, 'r+');
      try {
        const size = (await index.stat()).size;
        seg.lines = Math.floor(size / INDEX_RECORD_BYTES);
        if (seg.lines > 0) {
          const buf = Buffer.alloc(INDEX_RECORD_BYTES);
          await index.read(buf, 0, INDEX_RECORD_BYTES, (seg.lines - 1) * INDEX_RECORD_BYTES);
          const last = readIndexRecord(buf, 0);
          seg.bytes = last.offset + last.length;
          seg.lastSeq = last.seq;
        }
        if (size !== seg.lines * INDEX_RECORD_BYTES) await index.truncate(seg.lines * INDEX_RECORD_BYTES);
        if ((await log.stat()).size !== seg.bytes) await log.truncate(seg.bytes);
      } finally {
        await Promise.allSettled([index.close(), log.close()]);
      }
      // An empty segment can only be the newest (one is started for the line about to be written).
      if (seg.lines === 0 && i < listed.segments.length - 1) {
        await removeSegment(seg);
        continue;
      }
      segments.push(seg);
    }
    return new TailSegments(dir, listed.head, budgetFor(listed.head), segmentBytes, segments, mayRepair);
  }

  get lastSeq(): number {
    return this.segments.length ? this.segments[this.segments.length - 1].lastSeq : this.head.lastSeq;
  }

  /** Log bytes in the segments on disk. */
  get bytes(): number {
    return this.segments.reduce((n, s) => n + s.bytes, 0);
  }

  get lines(): number {
    return this.segments.reduce((n, s) => n + s.lines, 0);
  }

  /** Whether lines will be dropped: some are gone already, or the tail holds more than its budget. */
  get truncated(): boolean {
    return (this.segments.length > 0 && this.segments[0].firstSeq !== this.head.lastSeq + 1) || this.bytes > this.budget;
  }

  /** How many segments are on disk (for tests of the bound). */
  get segmentCount(): number {
    return this.segments.length;
  }

  /**
   * Stores `lines`, whose bytes are in `data` (consecutive, in seq order, `offset` into `data`).
   * A write that fails is cut back to what was committed before it rethrows.
   */
  async append(data: Buffer, lines: readonly TailLine[]): Promise<void> {
    const records = Buffer.allocUnsafe(Math.min(lines.length, COPY_RECORDS) * INDEX_RECORD_BYTES);
    const view = viewOf(records);
    for (let i = 0; i < lines.length; ) {
      let seg = this.segments[this.segments.length - 1];
      if (!seg || !this.current || seg.bytes >= this.segmentBytes) seg = await this.rotate(lines[i].seq, seg);
      let j = i;
      let runBytes = 0;
      while (j < lines.length && j - i < COPY_RECORDS && seg.bytes + runBytes < this.segmentBytes) runBytes += lines[j++].length;
      const base = lines[i].offset;
      for (let k = i; k < j; k++) {
        const l = lines[k];
        setIndexRecord(view, (k - i) * INDEX_RECORD_BYTES, l.seq, l.ts, l.offset - base + seg.bytes, l.length, l.stream, l.level, l.flags);
      }
      const { log, index } = this.current!;
      try {
        await writeAt(log, data.subarray(base, base + runBytes), seg.bytes);
        await writeAt(index, records.subarray(0, (j - i) * INDEX_RECORD_BYTES), seg.lines * INDEX_RECORD_BYTES);
      } catch (err) {
        if (this.mayRepair()) await cutBack(log, index, seg).catch(() => undefined);
        throw err;
      }
      seg.bytes += runBytes;
      seg.lines += j - i;
      seg.lastSeq = lines[j - 1].seq;
      i = j;
    }
  }

  /**
   * Starts the segment whose first line is `firstSeq` (or reopens the newest one after open()),
   * then deletes the oldest segments while the others hold the budget.
   */
  private async rotate(firstSeq: number, last: Segment | undefined): Promise<Segment> {
    await this.closeCurrent();
    let seg = last;
    if (!seg || seg.bytes >= this.segmentBytes) {
      const names = segmentFileNames(firstSeq);
      seg = { firstSeq, lastSeq: firstSeq - 1, bytes: 0, lines: 0, log: join(this.dir, names.log), index: join(this.dir, names.index) };
      this.segments.push(seg);
    }
    const log = await open(seg.log, OPEN_FLAGS, 0o644);
    const index = await open(seg.index, OPEN_FLAGS, 0o644).catch(async (err) => {
      await log.close();
      throw err;
    });
    this.current = { log, index };
    while (this.segments.length >= 2 && this.bytes - this.segments[0].bytes >= this.budget) {
      await removeSegment(this.segments[0]);
      this.segments.shift();
    }
    return seg;
  }

  /**
   * Writes the end of the log after the head: all of the tail if nothing was dropped and it fits
   * the budget (the file is then the one `head` would have written), else the marker and the last
   * lines that fit the budget, flagged `Tail`. Then removes `head` and the directory. Returns where
   * the main files then stand.
   */
  async compose(mainLog: FileHandle, mainIndex: FileHandle, markerText: Buffer): Promise<Composed> {
    await this.closeCurrent();
    const truncated = this.truncated;
    let pos = this.head.bytes;
    let lines = this.head.lines;
    const start = truncated ? await this.suffixStart() : { segment: 0, record: 0 };
    if (truncated) {
      const length = storedLineBytes(markerText.length);
      const marker = Buffer.allocUnsafe(length);
      marker.write(formatTimePrefix(this.head.firstTs), 0, 'latin1');
      markerText.copy(marker, TIME_PREFIX_BYTES);
      marker[length - 1] = 0x0a;
      const record = Buffer.allocUnsafe(INDEX_RECORD_BYTES);
      writeIndexRecord(
        { seq: this.head.lastSeq + 1, ts: this.head.firstTs, offset: pos, length, stream: LogStream.System, level: LogLevel.Warn, flags: IndexFlags.Marker },
        record,
        0,
      );
      await writeAt(mainLog, marker, pos);
      await writeAt(mainIndex, record, lines * INDEX_RECORD_BYTES);
      pos += length;
      lines += 1;
    }
    for (let s = start.segment; s < this.segments.length; s++) {
      const seg = this.segments[s];
      const first = s === start.segment ? start.record : 0;
      if (first >= seg.lines) continue;
      const index = await open(seg.index, 'r');
      const log = await open(seg.log, 'r');
      try {
        const from = (await readRecords(index, first, 1))[0].offset;
        // Every log byte of the segment before any of its records: a reader never follows a
        // record to bytes not yet there.
        const buf = Buffer.allocUnsafe(Math.min(COPY_BYTES, seg.bytes - from));
        for (let at = from; at < seg.bytes; ) {
          const n = Math.min(buf.length, seg.bytes - at);
          const { bytesRead } = await log.read(buf, 0, n, at);
          if (bytesRead !== n) throw new Error(`short read of ${seg.log} at ${at}`);
          await writeAt(mainLog, buf.subarray(0, n), pos + at - from);
          at += n;
        }
        for (let r = first; r < seg.lines; r += COPY_RECORDS) {
          const block = await readRecords(index, r, Math.min(COPY_RECORDS, seg.lines - r));
          const out = Buffer.allocUnsafe(block.length * INDEX_RECORD_BYTES);
          const view = viewOf(out);
          block.forEach((rec, k) =>
            setIndexRecord(view, k * INDEX_RECORD_BYTES, rec.seq, rec.ts, rec.offset - from + pos, rec.length, rec.stream, rec.level, rec.flags | (truncated ? IndexFlags.Tail : 0)),
          );
          await writeAt(mainIndex, out, lines * INDEX_RECORD_BYTES);
          lines += block.length;
        }
        pos += seg.bytes - from;
      } finally {
        await Promise.allSettled([index.close(), log.close()]);
      }
    }
    await rm(join(this.dir, TAIL_HEAD_FILE), { force: true });
    // Committed: a directory left behind (an error, a crash) is removed by the next open() or the janitor.
    await rm(this.dir, { recursive: true, force: true }).catch(() => undefined);
    return { bytes: pos, lines, truncated };
  }

  /** First record of the longest run of last lines whose bytes fit the budget. */
  private async suffixStart(): Promise<{ segment: number; record: number }> {
    let kept = 0;
    for (let s = this.segments.length - 1; s >= 0; s--) {
      const seg = this.segments[s];
      const index = await open(seg.index, 'r');
      try {
        for (let end = seg.lines; end > 0; end -= COPY_RECORDS) {
          const from = Math.max(0, end - COPY_RECORDS);
          const block = await readRecords(index, from, end - from);
          for (let k = block.length - 1; k >= 0; k--) {
            if (kept + block[k].length > this.budget) {
              const record = from + k + 1;
              return record < seg.lines ? { segment: s, record } : { segment: s + 1, record: 0 };
            }
            kept += block[k].length;
          }
        }
      } finally {
        await index.close();
      }
    }
    return { segment: 0, record: 0 };
  }

  private async closeCurrent(): Promise<void> {
    const c = this.current;
    this.current = undefined;
    if (c) await Promise.allSettled([c.log.close(), c.index.close()]);
  }

  async close(): Promise<void> {
    await this.closeCurrent();
  }
}

async function readRecords(index: FileHandle, first: number, count: number): Promise<IndexRecord[]> {
  const buf = Buffer.allocUnsafe(count * INDEX_RECORD_BYTES);
  const { bytesRead } = await index.read(buf, 0, buf.length, first * INDEX_RECORD_BYTES);
  if (bytesRead !== buf.length) throw new Error(`short read of a tail index at record ${first}`);
  const out: IndexRecord[] = [];
  for (let at = 0; at < bytesRead; at += INDEX_RECORD_BYTES) out.push(readIndexRecord(buf, at));
  return out;
}

/** Index first: a segment left with only its log (a crash in between) is a stray, removed on open. */
async function removeSegment(seg: Segment): Promise<void> {
  await rm(seg.index, { force: true });
  await rm(seg.log, { force: true });
}

/** Shortens a segment's files to what is committed (never lengthens them). */
async function cutBack(log: FileHandle, index: FileHandle, seg: Segment): Promise<void> {
  if ((await log.stat()).size > seg.bytes) await log.truncate(seg.bytes);
  if ((await index.stat()).size > seg.lines * INDEX_RECORD_BYTES) await index.truncate(seg.lines * INDEX_RECORD_BYTES);
}

/** `buf` at `position`, all of it: a write may store only part (the disk filling up mid-write). */
export async function writeAt(file: FileHandle, buf: Buffer, position: number): Promise<void> {
  for (let done = 0; done < buf.length; ) {
    const { bytesWritten } = await file.write(buf, done, buf.length - done, position + done);
    if (bytesWritten === 0) throw new Error(`wrote 0 of ${buf.length - done} bytes at ${position + done}`);
    done += bytesWritten;
  }
}
