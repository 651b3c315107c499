import { Body, Controller, Delete, Get, HttpCode, Inject, Param, Post, Query, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { CONFIG, FlashpodsConfig } from '@flashpods/config';
import { JobStatus } from '@flashpods/contracts';
import { z } from 'zod';
import { AuthedRequest } from '../auth/auth.guard';
import { ApiError } from '../common/api-error';
import { UUID } from '../common/uuid';
import { createJobSchema, describeZodError } from './create-job.schema';
import { jobView } from './job.view';
import { JobsService, ListQuery } from './jobs.service';

/** A job's creation time as this API prints it (`toISOString`), years 1970 to 9999 as Postgres stores them. */
const CURSOR_TIME = /^(19[7-9]\d|[2-9]\d{3})-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

const listSchema = z
  .object({
    status: z.nativeEnum(JobStatus).optional(),
    label: z
      .string()
      .regex(/^[^=]+=.*$/, 'must be key=value')
      .transform((s) => {
        const at = s.indexOf('=');
        return [s.slice(0, at), s.slice(at + 1)] as [string, string];
      })
      .optional(),
    limit: z.coerce.number().int().min(1).max(200).default(50),
    cursor: z
      .string()
      .max(200)
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
  async create(@Body() body: unknown, @Req() req: AuthedRequest) {
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      throw ApiError.invalid('body must be a JSON object');
    }
    const parsed = this.createSchema.safeParse(body);
    if (!parsed.success) throw ApiError.invalid(describeZodError(parsed.error));
    return jobView(await this.jobs.create(parsed.data, req.caller));
  }

  @Get()
  async list(@Query() query: Record<string, unknown>, @Req() req: AuthedRequest) {
    const parsed = listSchema.safeParse(query);
    if (!parsed.success) throw ApiError.invalid(describeZodError(parsed.error));
    const { jobs, nextCursor } = await this.jobs.list(parsed.data as ListQuery, req.caller);
    return { jobs: jobs.map(jobView), next_cursor: nextCursor };
  }

  @Get(':id')
  async get(@Param('id') id: string, @Req() req: AuthedRequest) {
    return jobView(await this.jobs.get(id, req.caller));
  }

  @Post(':id/cancel')
  @HttpCode(202)
  async cancel(@Param('id') id: string, @Req() req: AuthedRequest) {
    return jobView(await this.jobs.cancel(id, req.caller));
  }

  @Delete(':id')
  @HttpCode(204)
  async remove(@Param('id') id: string, @Req() req: AuthedRequest): Promise<void> {
    await this.jobs.delete(id, req.caller);
  }
}
