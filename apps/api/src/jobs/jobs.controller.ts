import { Body, Controller, Delete, Get, HttpCode, Inject, Param, Post, Query, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { CONFIG, FlashpodsConfig } from '@flashpods/config';
import { JobStatus } from '@flashpods/contracts';
import { z } from 'zod';
import { AuthedRequest } from '../auth/auth.guard';
import { ApiError } from '../common/api-error';
import { UUID } from '../common/uuid';
import {
  ApiEmpty,
  ApiErrors,
  ApiId,
  ApiJson,
  ApiJsonBody,
  ApiOp,
  ApiQueryParams,
  AUTHENTICATED,
  QueryParam,
  WITH_BODY,
} from '../openapi/api-docs.decorators';
import { createJobSchema, describeZodError } from './create-job.schema';
import { jobView } from './job.view';
import { JobsService, ListQuery } from './jobs.service';

/** A job's creation time as this API prints it (`toISOString`), years 1970 to 9999 as Postgres stores them. */
const CURSOR_TIME = /^(19[7-9]\d|[2-9]\d{3})-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

const LIST_LIMIT_DEFAULT = 50;
const LIST_LIMIT_MAX = 200;
const CURSOR_MAX = 200;
const LABEL_FILTER = /^[^=]+=.*$/;

export const listSchema = z
  .object({
    status: z.nativeEnum(JobStatus).optional(),
    label: z
      .string()
      .regex(LABEL_FILTER, 'must be key=value')
      .transform((s) => {
        const at = s.indexOf('=');
        return [s.slice(0, at), s.slice(at + 1)] as [string, string];
      })
      .optional(),
    limit: z.coerce.number().int().min(1).max(LIST_LIMIT_MAX).default(LIST_LIMIT_DEFAULT),
    cursor: z
      .string()
      .max(CURSOR_MAX)
      .transform((s, ctx) => {
        try {
          // Only what this API wrote (an ISO time it printed, a UUID): anything else would reach
          // Postgres and fail there as a 500.
          const [createdAt, id] = JSON.parse(Buffer.from(s, 'base64url').toString()) as unknown[];
          if (typeof createdAt !== 'string' || !CURSOR_TIME.test(createdAt) || typeof id !== 'string' || !UUID.test(id)) throw new Error();
          const at = new Date(createdAt);
          if (Number.isNaN(at.getTime()) || at.toISOString() !== createdAt) throw new Error();
          return { createdAt, id };
        } catch {
          ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'not a cursor from this API' });
          return z.NEVER;
        }
      })
      .optional(),
  })
  .strict();

/** `listSchema` as the OpenAPI document publishes it (`openapi/openapi.schemas.spec.ts` holds them to the same names and verdicts). */
export const LIST_QUERY: readonly QueryParam[] = [
  { name: 'status', description: 'Only jobs in this status.', schema: { $ref: '#/components/schemas/JobStatus' } },
  { name: 'label', description: 'Only jobs with this label, as `key=value`.', schema: { type: 'string', pattern: LABEL_FILTER.source } },
  { name: 'limit', description: 'Jobs per page.', schema: { type: 'integer', minimum: 1, maximum: LIST_LIMIT_MAX, default: LIST_LIMIT_DEFAULT } },
  { name: 'cursor', description: '`next_cursor` of the previous page.', schema: { type: 'string', maxLength: CURSOR_MAX } },
];

@ApiTags('jobs')
@ApiBearerAuth()
@Controller('jobs')
export class JobsController {
  private readonly createSchema;

  constructor(
    private readonly jobs: JobsService,
    @Inject(CONFIG) config: FlashpodsConfig,
  ) {
    this.createSchema = createJobSchema(config);
  }

  @Post()
  @ApiOp('createJob', 'Submit a job', 'The job is `pending` until a runner takes it.')
  @ApiJsonBody('CreateJobRequest', 'The job to run.')
  @ApiJson(201, 'Job', 'The job, `pending`.')
  @ApiErrors({ 400: ['invalid_request'] }, WITH_BODY, AUTHENTICATED)
  async create(@Body() body: unknown, @Req() req: AuthedRequest) {
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      throw ApiError.invalid('body must be a JSON object');
    }
    const parsed = this.createSchema.safeParse(body);
    if (!parsed.success) throw ApiError.invalid(describeZodError(parsed.error));
    return jobView(await this.jobs.create(parsed.data, req.caller));
  }

  @Get()
  @ApiOp('listJobs', 'List jobs', "Newest first; a tenant sees its own jobs, the admin every tenant's. Unknown parameters are refused.")
  @ApiQueryParams(LIST_QUERY)
  @ApiJson(200, 'JobList', 'A page of jobs.')
  @ApiErrors({ 400: ['invalid_request'] }, AUTHENTICATED)
  async list(@Query() query: Record<string, unknown>, @Req() req: AuthedRequest) {
    const parsed = listSchema.safeParse(query);
    if (!parsed.success) throw ApiError.invalid(describeZodError(parsed.error));
    const { jobs, nextCursor } = await this.jobs.list(parsed.data as ListQuery, req.caller);
    return { jobs: jobs.map(jobView), next_cursor: nextCursor };
  }

  @Get(':id')
  @ApiOp('getJob', 'Get a job', 'Once it shows a terminal status, `GET /jobs/{id}/output` returns the complete log.')
  @ApiId('job')
  @ApiJson(200, 'Job', 'The job.')
  @ApiErrors({ 404: ['job_not_found'] }, AUTHENTICATED)
  async get(@Param('id') id: string, @Req() req: AuthedRequest) {
    return jobView(await this.jobs.get(id, req.caller));
  }

  @Post(':id/cancel')
  @HttpCode(202)
  @ApiOp('cancelJob', 'Cancel a job', 'A pending job is cancelled without starting; a starting or running one is killed by its runner and ends `cancelled`.')
  @ApiId('job')
  @ApiJson(202, 'Job', 'Cancellation under way: the job as it stands (pending ones already `cancelled`).')
  @ApiErrors({ 404: ['job_not_found'], 409: ['job_terminal'] }, AUTHENTICATED)
  async cancel(@Param('id') id: string, @Req() req: AuthedRequest) {
    return jobView(await this.jobs.cancel(id, req.caller));
  }

  @Delete(':id')
  @HttpCode(204)
  @ApiOp('deleteJob', 'Delete a job', 'The job record and its logs are gone; only a terminal (or cleaned) job can be deleted.')
  @ApiId('job')
  @ApiEmpty(204, 'Deleted.')
  @ApiErrors({ 404: ['job_not_found'], 409: ['job_not_terminal'] }, AUTHENTICATED)
  async remove(@Param('id') id: string, @Req() req: AuthedRequest): Promise<void> {
    await this.jobs.delete(id, req.caller);
  }
}
