import { Controller, Get, HttpCode, HttpStatus, Param, Post, Query, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { JobStatus, parseLogLevel, parseLogStream } from '@flashpods/contracts';
import type { Response } from 'express';
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { stat } from 'node:fs/promises';
import { z } from 'zod';
import { describeZodError } from '../jobs/create-job.schema';
import { JobEntity } from '@flashpods/database';
import { AuthedRequest, TicketAccess } from '../auth/auth.guard';
import { LogTicketService } from '../auth/log-ticket.service';
import { ApiError } from '../common/api-error';
import { jobView } from '../jobs/job.view';
import { JobsService } from '../jobs/jobs.service';
import { JobLogsService, LogQuery } from './job-logs.service';
import { LogStreamService } from './log-stream.service';

export const TAIL_DEFAULT = 100;
export const TAIL_MAX = 10000;

/** The log endpoints' shared errors (seed 000): 404 while pending, 410 once cleaned. */
export function assertLogsReadable(job: JobEntity): void {
  if (job.status === JobStatus.Pending) {
    throw new ApiError(HttpStatus.NOT_FOUND, 'logs_not_available', 'the job has not started; no logs yet');
  }
  if (job.status === JobStatus.Cleaned) {
    throw new ApiError(HttpStatus.GONE, 'logs_deleted', 'the logs of this job were deleted by the cleanup');
  }
}

const seqParam = z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

export const LOGS_LIMIT_MAX = 1000;
export const MATCHES_LIMIT_DEFAULT = 10000;
export const MATCHES_LIMIT_MAX = 100000;

const logsQuerySchema = z
  .object({
    after_seq: seqParam.default(0),
    limit: z.coerce.number().int().min(1).max(LOGS_LIMIT_MAX).default(100),
    stream: z
      .string()
      .transform((s, ctx) => {
        const streams = s.split(',').map((name) => parseLogStream(name.trim()));
        if (streams.some((l) => l === undefined)) {
          ctx.addIssue({ code: 'custom', message: 'must be stdout, stderr or system (comma-separated)' });
          return z.NEVER;
        }
        return streams as NonNullable<(typeof streams)[number]>[];
      })
      .optional(),
    level: z
      .string()
      .transform((s, ctx) => {
        const levels = s.split(',').map((l) => parseLogLevel(l.trim()));
        if (levels.some((l) => l === undefined)) {
          ctx.addIssue({ code: 'custom', message: 'must be debug, info, warn, error or fatal (comma-separated)' });
          return z.NEVER;
        }
        return levels as NonNullable<(typeof levels)[number]>[];
      })
      .optional(),
    since: z
      .string()
      .transform((s, ctx) => {
        const ms = /^\d+$/.test(s) ? Number(s) : Date.parse(s);
        if (!Number.isFinite(ms)) {
          ctx.addIssue({ code: 'custom', message: 'must be an ISO 8601 time or epoch milliseconds' });
          return z.NEVER;
        }
        return ms;
      })
      .optional(),
    q: z.string().min(1).max(1000).optional(),
  })
  .strict();

/** The same filters, over the whole log: how many lines match, and which (the first `limit`). */
const matchesQuerySchema = logsQuerySchema
  .omit({ limit: true })
  .extend({ limit: z.coerce.number().int().min(1).max(MATCHES_LIMIT_MAX).default(MATCHES_LIMIT_DEFAULT) })
  .strict();

function parseTail(raw: unknown): number {
  if (raw === undefined) return TAIL_DEFAULT;
  if (typeof raw !== 'string' || !/^\d{1,6}$/.test(raw)) {
    throw ApiError.invalid(`tail must be an integer from 1 to ${TAIL_MAX}`);
  }
  const n = Number(raw);
  if (n < 1 || n > TAIL_MAX) throw ApiError.invalid(`tail must be an integer from 1 to ${TAIL_MAX}`);
  return n;
}

@ApiTags('logs')
@ApiBearerAuth()
@Controller('jobs/:id')
export class JobLogsController {
  constructor(
    private readonly jobs: JobsService,
    private readonly logs: JobLogsService,
    private readonly live: LogStreamService,
    private readonly tickets: LogTicketService,
  ) {}

  /**
   * A short-lived ticket for `?ticket=` on this job's stream and download, which browsers open
   * without headers. Only a bearer token gets one; a ticket never buys another.
   */
  @Post('logs/ticket')
  @HttpCode(201)
  async ticket(@Param('id') id: string, @Req() req: AuthedRequest) {
    const job = await this.jobs.get(id, req.caller);
    return this.tickets.issue(job.id, req.caller);
  }

  /** Seed 000: the last `tail` lines of the captured log. */
  @Get('output')
  async output(@Param('id') id: string, @Query('tail') tail: unknown, @Req() req: AuthedRequest) {
    const job = await this.jobs.get(id, req.caller);
    const n = parseTail(tail);
    assertLogsReadable(job);
    const t = await this.logs.tail(job.id, n);
    return { output: t.data.toString('utf8'), lines: t.lines, truncated: job.logTruncated, total_bytes: t.totalBytes };
  }

  /** Seed 004: lines after `after_seq`, filtered, for polling. */
  @Get('logs')
  async query(@Param('id') id: string, @Query() query: Record<string, unknown>, @Req() req: AuthedRequest) {
    const job = await this.jobs.get(id, req.caller);
    const parsed = logsQuerySchema.safeParse(query);
    if (!parsed.success) throw ApiError.invalid(describeZodError(parsed.error));
    assertLogsReadable(job);
    const p = parsed.data;
    const q: LogQuery = { afterSeq: p.after_seq, limit: p.limit, stream: p.stream, level: p.level, since: p.since, q: p.q };
    const { logs, nextAfterSeq } = await this.logs.query(job.id, q);
    return { logs, next_after_seq: nextAfterSeq, job: jobView(job) };
  }

  /**
   * The seqs of every stored line after `after_seq` that passes the filters (`q`, `stream`,
   * `level`, `since`), the first `limit` of them, and how many there are: a viewer's "n of m"
   * and its jumps between matches, over the whole log rather than a page of it.
   */
  @Get('logs/matches')
  async matches(@Param('id') id: string, @Query() query: Record<string, unknown>, @Req() req: AuthedRequest) {
    const job = await this.jobs.get(id, req.caller);
    const parsed = matchesQuerySchema.safeParse(query);
    if (!parsed.success) throw ApiError.invalid(describeZodError(parsed.error));
    assertLogsReadable(job);
    const p = parsed.data;
    const m = await this.logs.matches(job.id, { stream: p.stream, level: p.level, since: p.since, q: p.q }, p.after_seq, p.limit);
    return { total: m.total, seqs: m.seqs, last_seq: m.lastSeq };
  }

  /**
   * Every line as it is produced, as Server-Sent Events; resumes after `Last-Event-ID` or
   * `after_seq`; ends with an `end` event. On a pending job it waits for the job to start.
   */
  @Get('logs/stream')
  @TicketAccess()
  async stream(
    @Param('id') id: string,
    @Query('after_seq') afterParam: unknown,
    @Req() req: AuthedRequest,
    @Res() res: Response,
  ): Promise<void> {
    const job = await this.jobs.get(id, req.caller);
    const lastEventId = req.headers['last-event-id'];
    const fromHeader = typeof lastEventId === 'string' && lastEventId !== '';
    const raw = fromHeader ? lastEventId : (afterParam ?? '0');
    const after = seqParam.safeParse(raw);
    if (!after.success) throw ApiError.invalid('Last-Event-ID / after_seq must be a non-negative integer');
    // Unlike the one-shot reads, a stream opened on a pending job waits for it to start: a client
    // may open it straight after submitting.
    if (job.status !== JobStatus.Pending) assertLogsReadable(job);
    await this.live.stream(job.id, after.data, fromHeader || afterParam !== undefined, req, res);
  }

  /** The whole log file as it stands, as an attachment. */
  @Get('logs/download')
  @TicketAccess()
  async download(@Param('id') id: string, @Req() req: AuthedRequest, @Res() res: Response): Promise<void> {
    const job = await this.jobs.get(id, req.caller);
    assertLogsReadable(job);
    const path = this.logs.logPath(job.id);
    const size = await stat(path).then((s) => s.size, () => 0);
    res.setHeader('Content-Type', 'text/plain; charset=utf-8');
    res.setHeader('Content-Disposition', `attachment; filename="${job.id}.log"`);
    res.setHeader('Content-Length', String(size));
    if (size === 0) {
      res.end();
      return;
    }
    // Exactly the bytes present when the request came, even while the file grows. `pipeline`
    // closes the file when the client goes away mid-download (`.pipe()` left it open).
    await pipeline(createReadStream(path, { start: 0, end: size - 1 }), res).catch(() => res.destroy());
  }
}
