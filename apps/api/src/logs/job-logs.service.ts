import { Inject, Injectable } from '@nestjs/common';
import { CONFIG, FlashpodsConfig } from '@flashpods/config';
import { LogLevel, LogStream } from '@flashpods/contracts';
import {
  indexFileName,
  INDEX_RECORD_BYTES,
  IndexRecord,
  logFileName,
  readIndexAfter,
  readIndexRecord,
  readLinesOf,
  readTail,
  Tail,
  TIME_PREFIX_BYTES,
} from '@flashpods/log-format';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { LogEntryView, logEntryView, storedLineText } from './log-entry.view';

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

  /** The last `n` lines; an empty answer while the job has produced nothing yet. */
  async tail(jobId: string, n: number): Promise<Tail> {
    try {
      return await readTail(this.logPath(jobId), n);
    } catch (err) {
      if (isMissing(err)) return { data: Buffer.alloc(0), lines: 0, totalBytes: 0 };
      throw err;
    }
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
  async query(jobId: string, q: LogQuery): Promise<{ logs: LogEntryView[]; nextAfterSeq: number }> {
    const logs: LogEntryView[] = [];
    let cursor = q.afterSeq;
    const needle = q.q?.toLowerCase();
    for (let scanned = 0; logs.length < q.limit && scanned < SCAN_MAX; ) {
      const records = await this.records(jobId, cursor, Math.min(2000, SCAN_MAX - scanned));
      if (records.length === 0) break;
      scanned += records.length;
      const candidates = records.filter(
        (r) =>
          (q.stream === undefined || q.stream.includes(r.stream)) &&
          (q.level === undefined || q.level.includes(r.level)) &&
          (q.since === undefined || r.ts >= q.since),
      );
      let reachedLimit = false;
      for (const entry of await this.entries(jobId, candidates)) {
        if (needle !== undefined && !entry.line.toLowerCase().includes(needle)) continue;
        logs.push(entry);
        if (logs.length === q.limit) {
          cursor = entry.seq;
          reachedLimit = true;
          break;
        }
      }
      if (!reachedLimit) cursor = records[records.length - 1].seq;
    }
    return { logs, nextAfterSeq: cursor };
  }

  /**
   * Every line of the stored log after `afterSeq` that passes the filters, counted, and the seqs
   * of the first `limit`: what a viewer needs for "n of m" and to jump between matches of a
   * whole log. Reads the index in large batches and the text only where `q` needs it, folding
   * ASCII case on bytes when `q` is ASCII (a 1,000,000-line log is searched in well under a second).
   */
  async matches(jobId: string, filter: LogFilter, afterSeq: number, limit: number): Promise<LogMatches> {
    const out: LogMatches = { total: 0, seqs: [], lastSeq: afterSeq };
    const idx = await open(this.indexPath(jobId), 'r').catch((err) => (isMissing(err) ? undefined : Promise.reject(err)));
    if (!idx) return out;
    const log = filter.q === undefined ? undefined : await open(this.logPath(jobId), 'r');
    const needle = filter.q?.toLowerCase();
    const ascii = needle !== undefined && /^[\x00-\x7f]*$/.test(needle) ? Buffer.from(needle, 'latin1') : undefined;
    const found = (seq: number) => {
      out.total++;
      if (out.seqs.length < limit) out.seqs.push(seq);
    };
    try {
      const records = Math.floor((await idx.stat()).size / INDEX_RECORD_BYTES);
      const buf = Buffer.allocUnsafe(MATCH_INDEX_BATCH * INDEX_RECORD_BYTES);
      for (let first = Math.max(0, afterSeq); first < records; first += MATCH_INDEX_BATCH) {
        const count = Math.min(MATCH_INDEX_BATCH, records - first);
        const { bytesRead } = await idx.read(buf, 0, count * INDEX_RECORD_BYTES, first * INDEX_RECORD_BYTES);
        const candidates: IndexRecord[] = [];
        for (let at = 0; at + INDEX_RECORD_BYTES <= bytesRead; at += INDEX_RECORD_BYTES) {
          const r = readIndexRecord(buf, at);
          out.lastSeq = r.seq;
          if (filter.stream !== undefined && !filter.stream.includes(r.stream)) continue;
          if (filter.level !== undefined && !filter.level.includes(r.level)) continue;
          if (filter.since !== undefined && r.ts < filter.since) continue;
          if (!log) found(r.seq);
          else candidates.push(r);
        }
        if (log) await this.searchText(log, candidates, needle!, ascii, found);
      }
    } finally {
      await idx.close();
      await log?.close();
    }
    return out;
  }

  /** Calls `found` for each record whose text (after its time prefix) contains `needle`, in order. */
  private async searchText(
    log: Awaited<ReturnType<typeof open>>,
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

  private async records(jobId: string, afterSeq: number, max: number): Promise<IndexRecord[]> {
    try {
      return await readIndexAfter(this.indexPath(jobId), afterSeq, max);
    } catch (err) {
      if (isMissing(err)) return [];
      throw err;
    }
  }

  /** Reads the lines of `records`, one read per run of consecutive records. */
  private async entries(jobId: string, records: IndexRecord[]): Promise<LogEntryView[]> {
    const out: LogEntryView[] = [];
    for (let i = 0; i < records.length; ) {
      let j = i + 1;
      while (j < records.length && records[j].seq === records[j - 1].seq + 1 && j - i < 1000) j++;
      const run = records.slice(i, j);
      const stored = await readLinesOf(this.logPath(jobId), run);
      run.forEach((r, k) => out.push(logEntryView(r.seq, r.ts, r.stream, r.level, storedLineText(stored[k]))));
      i = j;
    }
    return out;
  }
}
