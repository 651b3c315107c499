import { Inject, Injectable } from '@nestjs/common';
import { CONFIG, duplicateRedis, FlashpodsConfig, REDIS, REDIS_KEYS, RedisClient } from '@flashpods/config';
import { isTerminal, JobStatus, LINES_FIELDS, RedisKeys, StreamEntryType } from '@flashpods/contracts';
import { decodeLines, detectLevel, streamEntryFields } from '@flashpods/log-format';
import type { Request, Response } from 'express';
import { DataSource } from 'typeorm';
import { LogEntryView, logEntryView } from './log-entry.view';
import { JobLogsService } from './job-logs.service';
import { apiMetrics } from '../health/api.metrics';

const BLOCK_MS = 500;

/**
 * Server-Sent Events for one job: each line is an event whose id is its seq. Lines already stored
 * come from the log file; newer ones from the job's Redis stream as the runner ships them. The
 * stream is trimmed behind the persister, so whenever it starts past the last seq sent, the gap is
 * read from the file first: no gap, no duplicate, on any API instance. Ends with an `end` event
 * carrying the terminal status, sent once the persister has stored it (and so the whole log).
 */
@Injectable()
export class LogStreamService {
  constructor(
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(REDIS_KEYS) private readonly keys: RedisKeys,
    private readonly logs: JobLogsService,
    private readonly ds: DataSource,
    @Inject(CONFIG) private readonly config: FlashpodsConfig,
  ) {}

  /**
   * `resumed`: the client named where it was (`Last-Event-ID` or `after_seq`). Resuming a finished
   * job at or after its last line answers 204, which tells an EventSource to stop: the `end` event
   * carries the last seq as its id, so a client that does not close() after `end` is not sent it
   * again, and again, every `retry` interval.
   */
  async stream(jobId: string, afterSeq: number, resumed: boolean, req: Request, res: Response): Promise<void> {
    if (resumed && (await this.finishedAt(jobId, afterSeq))) {
      res.status(204).end();
      return;
    }
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    res.write('retry: 1000\n\n');
    const closeMetric = apiMetrics.sseOpened();
    let closed = false;
    // Blocking reads on a connection of their own; it queues its first command until connected,
    // and waits longer than a block.
    const reader = duplicateRedis(this.redis, { enableOfflineQueue: true, commandTimeout: BLOCK_MS + 5000 });
    req.on('close', () => {
      closed = true;
      reader.disconnect();
    });
    const heartbeat = setInterval(() => res.write(': ping\n\n'), this.config.api.sseHeartbeatMs);
    let after = afterSeq;
    let streamId = '0-0';
    const send = async (e: LogEntryView) => {
      if (e.seq <= after) return;
      after = e.seq;
      if (!res.write(`id: ${e.seq}\nevent: line\ndata: ${JSON.stringify(e)}\n\n`)) {
        await new Promise<void>((resolve) => {
          res.once('drain', resolve);
          res.once('close', resolve);
        });
      }
    };
    const drainFile = async () => {
      for (let batch = await this.logs.after(jobId, after, 1000); batch.length && !closed; batch = await this.logs.after(jobId, after, 1000)) {
        for (const e of batch) await send(e);
      }
    };
    // Set when the stream was found past us: if the file then has nothing to fill in, those lines
    // were not kept (a `head_tail` log past its head drops what its tail cannot hold), and the
    // stream is followed from where it is.
    let behind = false;
    try {
      while (!closed) {
        const before = after;
        await drainFile();
        const skipGap = behind && after === before;
        const row = await this.jobRow(jobId);
        if (row === undefined || isTerminal(row.status) || row.status === JobStatus.Cleaned) {
          await drainFile();
          const end = { status: row?.status ?? 'deleted', exit_code: row?.exit_code ?? null, error_code: row?.error_code ?? null };
          res.write(`id: ${after}\nevent: end\ndata: ${JSON.stringify(end)}\n\n`);
          break;
        }
        ({ id: streamId, behind } = await this.followStream(reader, jobId, streamId, () => after, send, skipGap));
      }
    } catch (err) {
      if (!closed) res.write(`event: error\ndata: ${JSON.stringify({ message: 'stream interrupted; reconnect' })}\n\n`);
    } finally {
      clearInterval(heartbeat);
      closeMetric();
      reader.disconnect();
      res.end();
    }
  }

  /**
   * Sends lines from the job's Redis stream after `streamId`. Returns the id to continue from;
   * stops early (without passing the entry, `behind`) when the stream has lost lines the file must
   * supply, unless `skipGap` says the file has none to give.
   */
  private async followStream(
    reader: RedisClient,
    jobId: string,
    streamId: string,
    after: () => number,
    send: (e: LogEntryView) => Promise<void>,
    skipGap: boolean,
  ): Promise<{ id: string; behind: boolean }> {
    const reply = (await reader.xreadBuffer(
      'COUNT', 50, 'BLOCK', BLOCK_MS, 'STREAMS', this.keys.jobLog(jobId), streamId,
    )) as [Buffer, [Buffer, Buffer[]][]][] | null;
    let id = streamId;
    for (const [entryId, raw] of reply?.[0]?.[1] ?? []) {
      const fields = streamEntryFields(raw);
      if (fields.get(LINES_FIELDS.type)?.toString() === StreamEntryType.Lines) {
        const lines = decodeLines(fields.get(LINES_FIELDS.data)!, Number(fields.get(LINES_FIELDS.firstSeq)));
        if (!skipGap && lines.length && lines[0].seq > after() + 1 && lines[lines.length - 1].seq > after()) {
          return { id, behind: true }; // trimmed past us: the file has the missing lines
        }
        for (const l of lines) {
          await send(logEntryView(l.seq, l.ts, l.stream, detectLevel(l.stream, l.text), l.text.toString('utf8')));
        }
      }
      id = entryId.toString();
    }
    return { id, behind: false };
  }

  /** Whether the job has ended and no stored line follows `afterSeq`. */
  private async finishedAt(jobId: string, afterSeq: number): Promise<boolean> {
    const row = await this.jobRow(jobId);
    if (row !== undefined && !isTerminal(row.status) && row.status !== JobStatus.Cleaned) return false;
    return (await this.logs.after(jobId, afterSeq, 1)).length === 0;
  }

  /** What the stream needs of the job: whether it has ended, and how (for the `end` event). */
  private async jobRow(
    jobId: string,
  ): Promise<{ status: JobStatus; exit_code: number | null; error_code: string | null } | undefined> {
    const rows = await this.ds.query('SELECT status, exit_code, error_code FROM jobs WHERE id = $1', [jobId]);
    return rows[0];
  }
}
