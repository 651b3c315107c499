import { Controller, Get, HttpCode, HttpStatus, Param, Post, Query, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiHeader, ApiTags } from '@nestjs/swagger';
import { isTerminal, JobStatus, parseLogLevel, parseLogStream } from '@flashpods/contracts';
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
import { logsPageBody } from './log-lines.json';
import { LogStreamService } from './log-stream.service';
import {
  ApiEmpty,
  ApiErrors,
  ApiId,
  ApiJson,
  ApiMedia,
  ApiOp,
  ApiQueryParams,
  ApiTicketOrBearer,
  AUTHENTICATED,
  QueryParam,
} from '../openapi/api-docs.decorators';
import { LOG_LEVELS, LOG_STREAMS } from '../openapi/openapi.schemas';

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
const LOGS_LIMIT_DEFAULT = 100;
export const LOGS_LIMIT_MAX = 1000;
export const MATCHES_LIMIT_DEFAULT = 10000;
export const MATCHES_LIMIT_MAX = 100000;
const Q_MAX = 1000;

export const logsQuerySchema = z
  .object({
    after_seq: seqParam.default(0),
    limit: z.coerce.number().int().min(1).max(LOGS_LIMIT_MAX).default(LOGS_LIMIT_DEFAULT),
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
    q: z.string().min(1).max(Q_MAX).optional(),
  })
  .strict();

/** The same filters, over the whole log: how many lines match, and which (the first `limit`). */
export const matchesQuerySchema = logsQuerySchema
  .omit({ limit: true })
  .extend({ limit: z.coerce.number().int().min(1).max(MATCHES_LIMIT_MAX).default(MATCHES_LIMIT_DEFAULT) })
  .strict();

const AFTER_SEQ: QueryParam = {
  name: 'after_seq',
  description: 'Only lines after this seq.',
  schema: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER, default: 0 },
};

/** The filters of `logs` and `logs/matches`. */
const FILTER_QUERY: readonly QueryParam[] = [
  {
    name: 'stream',
    description: `Only lines of these streams, comma-separated (${LOG_STREAMS.join(', ')}).`,
    schema: { type: 'string', pattern: `^\\s*(${LOG_STREAMS.join('|')})\\s*(,\\s*(${LOG_STREAMS.join('|')})\\s*)*$`, examples: ['stdout', 'stdout,stderr'] },
  },
  {
    name: 'level',
    description: `Only lines of these levels, comma-separated (${LOG_LEVELS.join(', ')}).`,
    schema: { type: 'string', pattern: `^\\s*(${LOG_LEVELS.join('|')})\\s*(,\\s*(${LOG_LEVELS.join('|')})\\s*)*$`, examples: ['warn,error'] },
  },
  {
    name: 'since',
    description: 'Only lines captured at or after this time: ISO 8601, or epoch milliseconds.',
    schema: { type: 'string', examples: ['2026-01-01T00:00:00Z', '1767225600000'] },
  },
  { name: 'q', description: 'Only lines containing this text (case-insensitive).', schema: { type: 'string', minLength: 1, maxLength: Q_MAX } },
];

/** `logsQuerySchema` as the OpenAPI document publishes it (`openapi/openapi.schemas.spec.ts` holds them to the same names and verdicts). */
export const LOGS_QUERY: readonly QueryParam[] = [
  AFTER_SEQ,
  { name: 'limit', description: 'Lines per answer at most.', schema: { type: 'integer', minimum: 1, maximum: LOGS_LIMIT_MAX, default: LOGS_LIMIT_DEFAULT } },
  ...FILTER_QUERY,
];

/** `matchesQuerySchema` as published (held to it like `LOGS_QUERY`). */
export const MATCHES_QUERY: readonly QueryParam[] = [
  AFTER_SEQ,
  { name: 'limit', description: 'Seqs listed at most (all matches are counted).', schema: { type: 'integer', minimum: 1, maximum: MATCHES_LIMIT_MAX, default: MATCHES_LIMIT_DEFAULT } },
  ...FILTER_QUERY,
];

export const TAIL_QUERY: readonly QueryParam[] = [
  { name: 'tail', description: 'How many of the last lines.', schema: { type: 'integer', minimum: 1, maximum: TAIL_MAX, default: TAIL_DEFAULT } },
];

/** The errors of the one-shot log reads (seed 000): 404 while pending, 410 once cleaned. */
const LOG_READ_ERRORS = { 404: ['job_not_found', 'logs_not_available'], 410: ['logs_deleted'] } as const;

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
  @ApiOp('createLogTicket', 'Get a log ticket', "A ticket for `?ticket=` on this job's `logs/stream` and `logs/download`, good for 5 minutes; only a bearer token gets one.")
  @ApiId('job')
  @ApiJson(201, 'LogTicket', 'The ticket.')
  @ApiErrors({ 404: ['job_not_found'] }, AUTHENTICATED)
  async ticket(@Param('id') id: string, @Req() req: AuthedRequest) {
    const job = await this.jobs.get(id, req.caller);
    return this.tickets.issue(job.id, req.caller);
  }

  /** Seed 000: the last `tail` lines of the captured log. */
  @Get('output')
  @ApiOp('getJobOutput', 'Read the end of the log', 'The last `tail` lines of the log file, read from its end.')
  @ApiId('job')
  @ApiQueryParams(TAIL_QUERY)
  @ApiJson(200, 'Output', 'The last lines.')
  @ApiErrors({ 400: ['invalid_request'] }, LOG_READ_ERRORS, AUTHENTICATED)
  async output(@Param('id') id: string, @Query('tail') tail: unknown, @Req() req: AuthedRequest) {
    const job = await this.jobs.get(id, req.caller);
    const n = parseTail(tail);
    assertLogsReadable(job);
    const t = await this.logs.tail(job.id, n, job.logKeep);
    return { output: t.data.toString('utf8'), lines: t.lines, truncated: job.logTruncated, total_bytes: t.totalBytes };
  }

  /**
   * Seed 004: lines after `after_seq`, filtered, for polling. A page of a `head_tail` log that
   * crosses its gap says so: `dropped: {after_seq, lines}` (those lines were not kept; the marker
   * line carries seq `after_seq + 1`), and `next_after_seq` is then past the gap.
   */
  @Get('logs')
  @ApiOp('getJobLogs', 'Poll log lines', 'Structured lines after `after_seq`, filtered; poll on with `next_after_seq`. Unknown parameters are refused.')
  @ApiId('job')
  @ApiQueryParams(LOGS_QUERY)
  @ApiJson(200, 'LogsPage', 'The lines, and the job.')
  @ApiErrors({ 400: ['invalid_request'] }, LOG_READ_ERRORS, AUTHENTICATED)
  async query(@Param('id') id: string, @Query() query: Record<string, unknown>, @Req() req: AuthedRequest, @Res() res: Response): Promise<void> {
    const job = await this.jobs.get(id, req.caller);
    const parsed = logsQuerySchema.safeParse(query);
    if (!parsed.success) throw ApiError.invalid(describeZodError(parsed.error));
    assertLogsReadable(job);
    const p = parsed.data;
    const q: LogQuery = { afterSeq: p.after_seq, limit: p.limit, stream: p.stream, level: p.level, since: p.since, q: p.q };
    const { logsJson, nextAfterSeq, dropped } = await this.logs.queryJson(job.id, q, {
      keep: job.logKeep,
      endedAtSeq: isTerminal(job.status) ? job.logLastSeq : undefined,
    });
    // `dropped` only on a page of a head_tail log that crosses its gap: a head log's answer is unchanged.
    // The body `res.json` would send for `{logs, next_after_seq, dropped?, job}`, with its lines already JSON.
    res.setHeader('Content-Type', 'application/json; charset=utf-8');
    res.send(logsPageBody(logsJson, nextAfterSeq, dropped, jobView(job)));
  }

  /**
   * The seqs of every stored line after `after_seq` that passes the filters (`q`, `stream`,
   * `level`, `since`), the first `limit` of them, and how many there are: a viewer's "n of m"
   * and its jumps between matches, over the whole log rather than a page of it.
   */
  @Get('logs/matches')
  @ApiOp('getJobLogMatches', 'Find matching lines in the whole log', 'How many stored lines after `after_seq` pass the filters (the same as `logs`), and the seqs of the first `limit`, over the whole log. Unknown parameters are refused.')
  @ApiId('job')
  @ApiQueryParams(MATCHES_QUERY)
  @ApiJson(200, 'LogMatches', 'The count and the seqs.')
  @ApiErrors({ 400: ['invalid_request'] }, LOG_READ_ERRORS, AUTHENTICATED)
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
  @ApiOp(
    'streamJobLogs',
    'Follow the log live',
    'Server-Sent Events. Every line is a `line` event whose `id` is its seq and whose `data` is a `LogLine`; a `status` event, `data` `{"status"}`, when the job changes status while it runs (and on opening, once known); the stream ends with one `end` event, `data` `{"status", "exit_code", "error_code"}` (status `deleted` if the job was deleted meanwhile), or with an `error` event, `data` `{"reason", "message"}` (`behind`: the client could not be caught up; `error`: the stream broke), after which the client reconnects to resume. A `: ping` comment every `API_SSE_HEARTBEAT_MS`. Resumes after `Last-Event-ID`, or `after_seq`, with no gap and no duplicate. Opened on a pending job, it waits for the job to start.',
  )
  @ApiId('job')
  @ApiTicketOrBearer()
  @ApiQueryParams([AFTER_SEQ])
  @ApiHeader({ name: 'Last-Event-ID', required: false, description: 'The last seq received (EventSource sends it on reconnect); wins over `after_seq`.', schema: { type: 'string', pattern: '^\\d+$' } })
  @ApiMedia(200, 'text/event-stream', { type: 'string', examples: ['retry: 1000\n\nid: 1\nevent: line\ndata: {"seq":1,"ts":"2026-01-01T00:00:00.000Z","stream":"stdout","level":"info","line":"hello"}\n\nevent: status\ndata: {"status":"running"}\n\nid: 1\nevent: end\ndata: {"status":"completed","exit_code":0,"error_code":null}\n\n'] }, 'The events, until `end`.')
  @ApiEmpty(204, 'Resumed at or past the last line of a job that has ended: nothing more will come (an EventSource stops reconnecting).')
  @ApiErrors({ 400: ['invalid_request'], 404: ['job_not_found'], 410: ['logs_deleted'] }, AUTHENTICATED)
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
    await this.live.stream(job, after.data, fromHeader || afterParam !== undefined, req, res);
  }

  /** The whole log file as it stands, as an attachment. */
  @Get('logs/download')
  @TicketAccess()
  @ApiOp('downloadJobLog', 'Download the log file', 'The log file as it stands when asked, `[HH:MM:SS.mmm] text` lines, as an attachment.')
  @ApiId('job')
  @ApiTicketOrBearer()
  @ApiMedia(200, 'text/plain', { type: 'string' }, 'The log file.', {
    'Content-Disposition': { description: '`attachment; filename="{id}.log"`', schema: { type: 'string' } },
  })
  @ApiErrors(LOG_READ_ERRORS, AUTHENTICATED)
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
