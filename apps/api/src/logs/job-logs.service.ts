import { Inject, Injectable } from '@nestjs/common';
import { CONFIG, FlashpodsConfig } from '@flashpods/config';
import { LogKeep, LogLevel, LogStream } from '@flashpods/contracts';
import {
  indexFileName,
  INDEX_RECORD_BYTES,
  IndexFlags,
  IndexRecord,
  listTailSegments,
  logFileName,
  readIndexAfter,
  readIndexRecord,
  readLinesOf,
  readSpanOf,
  readTail,
  Tail,
  tailDirName,
  TIME_PREFIX_BYTES,
} from '@flashpods/log-format';
import { FileHandle, open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { LogEntryView, logEntryView, storedLineText } from './log-entry.view';
import { LogLinesJson } from './log-lines.json';

export interface LogQuery {
  afterSeq: number;
  limit: number;
  stream?: LogStream[];
  level?: LogLevel[];
  since?: number;
  q?: string;
}

/** Records read from the index per request at most, so a sparse filter cannot scan a whole log. */
const SCAN_MAX = 20000;
/** Index records read at once by a whole-log search. */
const MATCH_INDEX_BATCH = 65536;
/** Log bytes read at once by a whole-log search. */
const MATCH_READ_BYTES = 4 * 1024 * 1024;

export type LogFilter = Pick<LogQuery, 'stream' | 'level' | 'since' | 'q'>;

export interface LogMatches {
  /** Matching lines after `afterSeq` in the whole stored log. */
  total: number;
  /** The first `limit` of them. */
  seqs: number[];
  /** The last seq examined: the end of the stored log when the search began. */
  lastSeq: number;
}

/** An index record and the file its line is in: the log, or a tail segment of a running `head_tail` job. */
type SourcedRecord = IndexRecord & { log: string };

/** Lines `after_seq + 1 .. after_seq + lines` are not stored (a `head_tail` log's gap; the marker carries `after_seq + 1`). */
export interface Dropped {
  after_seq: number;
  lines: number;
}

/** What the gap report needs of the job. */
export interface JobLogInfo {
  keep: LogKeep;
  /** Seq of the last line the job produced (`log_last_seq`), once it has ended. */
  endedAtSeq?: number;
}

const isMissing = (err: unknown) => (err as NodeJS.ErrnoException).code === 'ENOENT';

@Injectable()
export class JobLogsService {
  constructor(@Inject(CONFIG) private readonly config: FlashpodsConfig) {}

  logPath(jobId: string): string {
    return join(this.config.logs.dir, logFileName(jobId));
  }

  indexPath(jobId: string): string {
    return join(this.config.logs.dir, indexFileName(jobId));
  }

  tailDir(jobId: string): string {
    return join(this.config.logs.dir, tailDirName(jobId));
  }

  /**
   * The last `n` lines; an empty answer while the job has produced nothing yet. A running
   * `head_tail` job past its head has its newest lines in tail segments: they are read first
   * (newest segment first), then the log file for what they lack. `totalBytes` counts them all.
   * A `head` job has none: its tail directory is not looked for.
   */
  async tail(jobId: string, n: number, keep: LogKeep = LogKeep.HeadTail): Promise<Tail> {
    const files = [this.logPath(jobId)];
    const listed = keep === LogKeep.HeadTail ? await listTailSegments(this.tailDir(jobId)).catch(() => undefined) : undefined;
    if (listed) files.push(...listed.segments.map((s) => s.log));
    const parts: Buffer[] = [];
    let lines = 0;
    let totalBytes = 0;
    for (let i = files.length - 1; i >= 0; i--) {
      try {
        if (lines >= n) {
          totalBytes += (await stat(files[i])).size;
          continue;
        }
        const t = await readTail(files[i], n - lines);
        totalBytes += t.totalBytes;
        parts.unshift(t.data);
        lines += t.lines;
      } catch (err) {
        if (!isMissing(err)) throw err;
        // A segment removed meanwhile (rotated away, or composed into the log): read again.
        if (i > 0) return this.tail(jobId, n, keep);
      }
    }
    return { data: parts.length === 1 ? parts[0] : Buffer.concat(parts), lines, totalBytes };
  }

  /** Stored lines after `afterSeq`, at most `max`, unfiltered (the live stream reads these). */
  async after(jobId: string, afterSeq: number, max: number): Promise<LogEntryView[]> {
    const records = await this.records(jobId, afterSeq, max);
    return this.entries(jobId, records);
  }

  /**
   * Lines matching the filters, after `afterSeq`. `nextAfterSeq` is the last seq examined, so a
   * poller never re-reads lines the filter skipped.
   */
  async query(jobId: string, q: LogQuery, info: JobLogInfo = { keep: LogKeep.Head }): Promise<{ logs: LogEntryView[]; nextAfterSeq: number; dropped?: Dropped }> {
    const logs: LogEntryView[] = [];
    let cursor = q.afterSeq;
    const needle = q.q?.toLowerCase();
    const gaps = new GapTracker(q.afterSeq);
    const byIndex = q.stream !== undefined || q.level !== undefined || q.since !== undefined;
    for (let scanned = 0; logs.length < q.limit && scanned < SCAN_MAX; ) {
      // Unfiltered, a page needs exactly the records it returns; a filter reads ahead in batches.
      const want = byIndex || needle !== undefined ? 2000 : q.limit - logs.length;
      const asked = Math.min(want, SCAN_MAX - scanned);
      const records = await this.records(jobId, cursor, asked);
      if (records.length === 0) break;
      scanned += records.length;
      const candidates = byIndex
        ? records.filter(
            (r) =>
              (q.stream === undefined || q.stream.includes(r.stream)) &&
              (q.level === undefined || q.level.includes(r.level)) &&
              (q.since === undefined || r.ts >= q.since),
          )
        : records;
      // Only `q` needs a line's text to decide: without it, no more lines are read than the page takes.
      const reading = needle === undefined ? candidates.slice(0, q.limit - logs.length) : candidates;
      let reachedLimit = false;
      for (const entry of await this.entries(jobId, reading)) {
        if (needle !== undefined && !entry.line.toLowerCase().includes(needle)) continue;
        logs.push(entry);
        if (logs.length === q.limit) {
          cursor = entry.seq;
          reachedLimit = true;
          break;
        }
      }
      if (!reachedLimit) cursor = records[records.length - 1].seq;
      for (const r of records) {
        if (r.seq > cursor) break;
        gaps.see(r);
      }
      // Fewer than asked: the stored log ends here for now.
      if (records.length < asked) break;
    }
    if (info.keep !== LogKeep.HeadTail) return { logs, nextAfterSeq: cursor };
    if (gaps.markerAt === cursor) {
      // The page ends on the marker: what it stands for is known from the next line (or, with none
      // kept after it, from the job's last seq), and the page is taken to have examined those seqs.
      const next = (await this.records(jobId, cursor, 1))[0];
      const end = next ? next.seq : info.endedAtSeq !== undefined ? info.endedAtSeq + 1 : undefined;
      if (end !== undefined) {
        gaps.dropped ??= { after_seq: cursor - 1, lines: end - cursor };
        cursor = end - 1;
      }
    }
    return gaps.dropped ? { logs, nextAfterSeq: cursor, dropped: gaps.dropped } : { logs, nextAfterSeq: cursor };
  }

  /**
   * `query`'s page with its `logs` as JSON (an array of `LogEntryView`s, the bytes
   * `JSON.stringify` makes of them). An unfiltered page of a `head` log, what every poll of a
   * viewer or of `logs -f` asks, is written straight from the index and the stored lines, without
   * an object or a string per line; any other page is `query`'s, serialised.
   */
  async queryJson(jobId: string, q: LogQuery, info: JobLogInfo = { keep: LogKeep.Head }): Promise<{ logsJson: Buffer; nextAfterSeq: number; dropped?: Dropped }> {
    const filtered = q.stream !== undefined || q.level !== undefined || q.since !== undefined || q.q !== undefined;
    if (filtered || info.keep === LogKeep.HeadTail) {
      const page = await this.query(jobId, q, info);
      const logsJson = Buffer.from(JSON.stringify(page.logs));
      return page.dropped ? { logsJson, nextAfterSeq: page.nextAfterSeq, dropped: page.dropped } : { logsJson, nextAfterSeq: page.nextAfterSeq };
    }
    // As `query` reads such a page: the first `limit` records after the cursor, every one of them
    // on the page (a `head` log has no tail segments), the cursor moved to the last.
    let records: IndexRecord[];
    try {
      records = await readIndexAfter(this.indexPath(jobId), q.afterSeq, Math.min(q.limit, SCAN_MAX));
    } catch (err) {
      if (!isMissing(err)) throw err;
      records = [];
    }
    let bytes = 0;
    for (const r of records) bytes += r.length;
    const out = new LogLinesJson(bytes + records.length * 96 + 2);
    const log = this.logPath(jobId);
    for (let i = 0; i < records.length; ) {
      // A run of records stored one after the other, read at once (as `entries` reads them).
      let j = i + 1;
      while (j < records.length && records[j].offset === records[j - 1].offset + records[j - 1].length && j - i < 1000) j++;
      const run = records.slice(i, j);
      const span = await readSpanOf(log, run);
      const from = run[0].offset;
      for (const r of run) out.add(r.seq, r.ts, r.stream, r.level, span, r.offset - from + TIME_PREFIX_BYTES, r.offset - from + r.length - 1);
      i = j;
    }
    return { logsJson: out.end(), nextAfterSeq: records.length ? records[records.length - 1].seq : q.afterSeq };
  }

  /**
   * Every line of the stored log after `afterSeq` that passes the filters, counted, and the seqs
   * of the first `limit`: what a viewer needs for "n of m" and to jump between matches of a
   * whole log. Reads the index in large batches and the text only where `q` needs it, folding
   * ASCII case on bytes when `q` is ASCII (a 1,000,000-line log is searched in well under a second).
   * A running `head_tail` job past its head has its newest lines in tail segments: they are
   * searched after the log, oldest first (one removed meanwhile is skipped, as by `records`).
   */
  async matches(jobId: string, filter: LogFilter, afterSeq: number, limit: number): Promise<LogMatches> {
    const out: LogMatches = { total: 0, seqs: [], lastSeq: afterSeq };
    const needle = filter.q?.toLowerCase();
    const ascii = needle !== undefined && /^[\x00-\x7f]*$/.test(needle) ? Buffer.from(needle, 'latin1') : undefined;
    const found = (seq: number) => {
      out.total++;
      if (out.seqs.length < limit) out.seqs.push(seq);
    };
    const search = { filter, needle, ascii, found };
    if (!(await this.matchesIn(this.indexPath(jobId), this.logPath(jobId), search, out))) return out;
    const listed = await listTailSegments(this.tailDir(jobId)).catch(() => undefined);
    for (const seg of listed?.segments ?? []) await this.matchesIn(seg.index, seg.log, search, out, true);
    return out;
  }

  /** Searches one index (the log's, or a tail `segment`'s) and its file after `out.lastSeq`; false when the index is not there. */
  private async matchesIn(
    indexPath: string,
    logPath: string,
    s: { filter: LogFilter; needle?: string; ascii?: Buffer; found: (seq: number) => void },
    out: LogMatches,
    segment = false,
  ): Promise<boolean> {
    const { filter } = s;
    const idx = await open(indexPath, 'r').catch((err) => (isMissing(err) ? undefined : Promise.reject(err)));
    if (!idx) return false;
    let log: FileHandle | undefined;
    try {
      log = s.needle === undefined ? undefined : await open(logPath, 'r');
      const records = Math.floor((await idx.stat()).size / INDEX_RECORD_BYTES);
      const buf = Buffer.allocUnsafe(MATCH_INDEX_BATCH * INDEX_RECORD_BYTES);
      for (let first = await firstRecordAfter(idx, records, out.lastSeq); first < records; first += MATCH_INDEX_BATCH) {
        const count = Math.min(MATCH_INDEX_BATCH, records - first);
        const { bytesRead } = await idx.read(buf, 0, count * INDEX_RECORD_BYTES, first * INDEX_RECORD_BYTES);
        const candidates: IndexRecord[] = [];
        for (let at = 0; at + INDEX_RECORD_BYTES <= bytesRead; at += INDEX_RECORD_BYTES) {
          const r = readIndexRecord(buf, at);
          if (r.seq <= out.lastSeq) continue;
          out.lastSeq = r.seq;
          if (filter.stream !== undefined && !filter.stream.includes(r.stream)) continue;
          if (filter.level !== undefined && !filter.level.includes(r.level)) continue;
          if (filter.since !== undefined && r.ts < filter.since) continue;
          if (!log) s.found(r.seq);
          else candidates.push(r);
        }
        if (log) await searchText(log, candidates, s.needle!, s.ascii, s.found);
      }
    } catch (err) {
      // A tail segment rotated or composed away under the search: what it had is dropped, or in the log.
      if (!(segment && isMissing(err))) throw err;
    } finally {
      await idx.close();
      await log?.close();
    }
    return true;
  }

  /**
   * Records after `afterSeq`, at most `max`: from the index, then, for a running `head_tail` job
   * past its head, from its tail segments (oldest first; one removed meanwhile is skipped: it was
   * rotated away, or composed into the log, which the next read finds).
   */
  private async records(jobId: string, afterSeq: number, max: number): Promise<SourcedRecord[]> {
    const log = this.logPath(jobId);
    let out: SourcedRecord[];
    try {
      out = (await readIndexAfter(this.indexPath(jobId), afterSeq, max)).map((r) => ({ ...r, log }));
    } catch (err) {
      if (isMissing(err)) return [];
      throw err;
    }
    if (out.length >= max) return out;
    const listed = await listTailSegments(this.tailDir(jobId)).catch(() => undefined);
    for (const seg of listed?.segments ?? []) {
      const after = out.length ? out[out.length - 1].seq : afterSeq;
      const more = await readIndexAfter(seg.index, after, max - out.length).catch((err) => {
        if (isMissing(err)) return [];
        throw err;
      });
      out.push(...more.map((r) => ({ ...r, log: seg.log })));
      if (out.length >= max) break;
    }
    return out;
  }

  /** Reads the lines of `records`, one read per run of consecutive records in one file. */
  private async entries(jobId: string, records: SourcedRecord[]): Promise<LogEntryView[]> {
    const out: LogEntryView[] = [];
    for (let i = 0; i < records.length; ) {
      let j = i + 1;
      while (
        j < records.length &&
        records[j].log === records[i].log &&
        records[j].offset === records[j - 1].offset + records[j - 1].length &&
        j - i < 1000
      ) {
        j++;
      }
      const run = records.slice(i, j);
      const stored = await readLinesOf(run[0].log, run).catch((err) => {
        // A tail segment removed between reading its index and its lines: its lines are gone
        // from there (dropped, or composed into the log, where the next read finds them).
        if (isMissing(err) && run[0].log !== this.logPath(jobId)) return undefined;
        throw err;
      });
      if (!stored) break;
      run.forEach((r, k) => out.push(logEntryView(r.seq, r.ts, r.stream, r.level, storedLineText(stored[k]))));
      i = j;
    }
    return out;
  }
}

/**
 * Finds the gap a page crosses: the seqs jumped over between the cursor and the first record, or
 * between two records; after the marker of a `head_tail` log the line it replaced counts too.
 */
class GapTracker {
  dropped: Dropped | undefined;
  /** Seq of the last record seen if it was the marker. */
  markerAt: number | undefined;
  private prev: number;

  constructor(afterSeq: number) {
    this.prev = Math.max(0, Math.floor(afterSeq));
  }

  see(r: IndexRecord): void {
    if (this.dropped === undefined) {
      if (this.markerAt !== undefined) this.dropped = { after_seq: this.markerAt - 1, lines: r.seq - this.markerAt };
      else if (r.seq > this.prev + 1) this.dropped = { after_seq: this.prev, lines: r.seq - this.prev - 1 };
    }
    this.prev = r.seq;
    this.markerAt = r.flags & IndexFlags.Marker ? r.seq : undefined;
  }
}

/** Position of the first of `total` index records whose seq is > `afterSeq` (a `head_tail` log has a gap: seqs are not positions). */
async function firstRecordAfter(fh: FileHandle, total: number, afterSeq: number): Promise<number> {
  const buf = Buffer.allocUnsafe(INDEX_RECORD_BYTES);
  const seqAt = async (i: number) => {
    await fh.read(buf, 0, INDEX_RECORD_BYTES, i * INDEX_RECORD_BYTES);
    return readIndexRecord(buf, 0).seq;
  };
  let lo = 0;
  let hi = total;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((await seqAt(mid)) > afterSeq) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** Calls `found` for each record whose text (after its time prefix) contains `needle`, in order. */
async function searchText(
  log: FileHandle,
  records: IndexRecord[],
  needle: string,
  ascii: Buffer | undefined,
  found: (seq: number) => void,
): Promise<void> {
  for (let i = 0; i < records.length; ) {
    // A run of records whose bytes are read at once (at least one, however long).
    const from = records[i].offset;
    let j = i + 1;
    while (j < records.length && records[j].offset + records[j].length - from <= MATCH_READ_BYTES) j++;
    const to = records[j - 1].offset + records[j - 1].length;
    const bytes = Buffer.allocUnsafe(to - from);
    await log.read(bytes, 0, bytes.length, from);
    if (ascii) {
      for (let k = 0; k < bytes.length; k++) if (bytes[k] >= 65 && bytes[k] <= 90) bytes[k] += 32;
      let r = i;
      for (let at = bytes.indexOf(ascii); at !== -1 && r < j; ) {
        // The record holding `at`; a match counts only inside its text.
        while (r < j && records[r].offset + records[r].length - from <= at) r++;
        if (r === j) break;
        const rec = records[r];
        const textFrom = rec.offset - from + TIME_PREFIX_BYTES;
        const textTo = rec.offset - from + rec.length - 1;
        if (at >= textFrom && at + ascii.length <= textTo) {
          found(rec.seq);
          r++;
          if (r === j) break;
          at = bytes.indexOf(ascii, records[r].offset - from);
        } else {
          at = bytes.indexOf(ascii, at + 1);
        }
      }
    } else {
      for (let r = i; r < j; r++) {
        const rec = records[r];
        const text = bytes.toString('utf8', rec.offset - from + TIME_PREFIX_BYTES, rec.offset - from + rec.length - 1);
        if (text.toLowerCase().includes(needle)) found(rec.seq);
      }
    }
    i = j;
  }
}
