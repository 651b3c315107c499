import { Controller, Get, HttpStatus, Param, Query, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { JobStatus } from '@flashpods/contracts';
import { JobEntity } from '@flashpods/database';
import { AuthedRequest } from '../auth/auth.guard';
import { ApiError } from '../common/api-error';
import { JobsService } from '../jobs/jobs.service';
import { JobLogsService } from './job-logs.service';

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
  ) {}

  /** Seed 000: the last `tail` lines of the captured log. */
  @Get('output')
  async output(@Param('id') id: string, @Query('tail') tail: unknown, @Req() req: AuthedRequest) {
    const job = await this.jobs.get(id, req.caller);
    const n = parseTail(tail);
    assertLogsReadable(job);
    const t = await this.logs.tail(job.id, n);
    return { output: t.data.toString('utf8'), lines: t.lines, truncated: job.logTruncated, total_bytes: t.totalBytes };
  }
}
