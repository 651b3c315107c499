import { Inject, Injectable } from '@nestjs/common';
import { CONFIG, FlashpodsConfig } from '@flashpods/config';
import { LogLevel, LogStream } from '@flashpods/contracts';
import {
  indexFileName,
  IndexRecord,
  logFileName,
  readIndexAfter,
  readLinesOf,
  readTail,
  Tail,
} from '@flashpods/log-format';
import { join } from 'node:path';
import { LogEntryView, logEntryView, storedLineText } from './log-entry.view';

export interface LogQuery {
  afterSeq: number;
  limit: number;
  stream?: LogStream;
  level?: LogLevel[];
  since?: number;
  q?: string;
}

/** Records read from the index per request at most, so a sparse filter cannot scan a whole log. */
const SCAN_MAX = 20000;

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
          (q.stream === undefined || r.stream === q.stream) &&
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
