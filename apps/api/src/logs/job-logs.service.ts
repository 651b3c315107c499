import { Inject, Injectable } from '@nestjs/common';
import { CONFIG, FlashpodsConfig } from '@flashpods/config';
import { LogKeep, LogLevel, LogStream } from '@flashpods/contracts';
import {
  indexFileName,
  IndexFlags,
  IndexRecord,
  listTailSegments,
  logFileName,
  readIndexAfter,
  readLinesOf,
  readTail,
  Tail,
  tailDirName,
} from '@flashpods/log-format';
import { stat } from 'node:fs/promises';
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
   */
  async tail(jobId: string, n: number): Promise<Tail> {
    const files = [this.logPath(jobId)];
    const listed = await listTailSegments(this.tailDir(jobId)).catch(() => undefined);
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
        if (i > 0) return this.tail(jobId, n);
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
      for (const r of records) {
        if (r.seq > cursor) break;
        gaps.see(r);
      }
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
