import { InjectQueue } from '@nestjs/bullmq';
import { HttpStatus, Inject, Injectable } from '@nestjs/common';
import { CONFIG, FlashpodsConfig, REDIS, REDIS_KEYS, runJobOptions, RedisClient } from '@flashpods/config';
import { isTerminal, JobName, JobPayloads, JobStatus, LogKeep, QueueName, RedisKeys } from '@flashpods/contracts';
import { JobEntity, newJobEntity, transitionJob } from '@flashpods/database';
import { indexFileName, logFileName, tailDirName } from '@flashpods/log-format';
import { Queue } from 'bullmq';
import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { Caller } from '../auth/auth.guard';
import { ApiError } from '../common/api-error';
import { pgPool, PgPool } from '../common/pg-pool';
import { UUID } from '../common/uuid';
import { CreateJobBody } from './create-job.schema';
import { apiMetrics } from '../health/api.metrics';

/**
 * One job row as a `JobEntity`'s fields: every column, named as the entity names it, bigints as
 * numbers (they fit in a double, as the entity's transformer assumes). The hot read of the API
 * (`GET /jobs/:id`, and every log read first), so one prepared statement rather than the ORM.
 */
const JOB_BY_ID = `SELECT id, tenant, status, image, command, env, secret_names AS "secretNames",
  timeout_seconds AS "timeoutSeconds", limits, labels, network, exit_code AS "exitCode",
  error_code AS "errorCode", error_message AS "errorMessage", runner_id AS "runnerId",
  created_at AS "createdAt", started_at AS "startedAt", running_at AS "runningAt",
  finished_at AS "finishedAt", cleaned_at AS "cleanedAt", updated_at AS "updatedAt",
  log_bytes::float8 AS "logBytes", log_lines::float8 AS "logLines", log_truncated AS "logTruncated",
  log_last_seq::float8 AS "logLastSeq", log_keep AS "logKeep", log_mode AS "logMode",
  log_lines_lost AS "logLinesLost"
FROM jobs WHERE id = $1`;

export interface ListQuery {
  status?: JobStatus;
  label?: [string, string];
  limit: number;
  cursor?: { createdAt: string; id: string };
}

@Injectable()
export class JobsService {
  private readonly pool: PgPool;

  constructor(
    @Inject(CONFIG) private readonly config: FlashpodsConfig,
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(REDIS_KEYS) private readonly keys: RedisKeys,
    @InjectQueue(QueueName.Jobs) private readonly queue: Queue,
    private readonly ds: DataSource,
  ) {
    this.pool = pgPool(ds);
  }

  async create(body: CreateJobBody, caller: Caller): Promise<JobEntity> {
    const j = this.config.jobs;
    const job = newJobEntity({
      id: randomUUID(),
      tenant: caller.tenant,
      image: body.image,
      command: body.command ?? null,
      env: body.env ?? {},
      secretNames: Object.keys(body.secrets ?? {}),
      timeoutSeconds: body.timeout_seconds ?? j.timeoutDefaultSeconds,
      limits: {
        memoryMb: body.limits?.memory_mb ?? j.memoryMbDefault,
        cpus: body.limits?.cpus ?? j.cpusDefault,
        pids: body.limits?.pids ?? j.pidsDefault,
      },
      labels: body.labels ?? {},
      network: body.network ?? false,
      logKeep: body.log_keep ?? LogKeep.Head,
    });
    const secretsKey = this.keys.jobSecrets(job.id);
    const hasSecrets = body.secrets !== undefined && Object.keys(body.secrets).length > 0;
    // Secrets first: once the row exists, whoever enqueues it (this request, or the janitor's
    // liveness sweep after an API that died right after the insert) finds its secrets in place.
    // Kept in Redis only until the container has started; never in Postgres or in queue data.
    if (hasSecrets) await this.redis.multi().hset(secretsKey, body.secrets!).expire(secretsKey, job.timeoutSeconds + 7 * 24 * 3600).exec();
    try {
      await this.ds.getRepository(JobEntity).insert(job);
    } catch (err) {
      if (hasSecrets) await this.redis.del(secretsKey).catch(() => undefined);
      throw err;
    }
    try {
      const payload: JobPayloads[JobName.RunJob] = { jobId: job.id };
      await this.queue.add(JobName.RunJob, payload, runJobOptions(job.id));
    } catch (err) {
      // Redis is down: the client is told 503 and will submit again, so this row must not stay
      // behind as a job nobody asked for, nor its secrets. (An API that dies right here leaves a
      // pending row without a queue entry: the janitor's liveness sweep enqueues it.)
      await this.ds.query('DELETE FROM jobs WHERE id = $1 AND status = $2', [job.id, JobStatus.Pending]).catch(() => undefined);
      if (hasSecrets) await this.redis.del(secretsKey).catch(() => undefined);
      throw err;
    }
    apiMetrics.submitted();
    return job;
  }

  /** The caller's job, or 404 for an unknown id, a malformed id, or another tenant's job. */
  async get(id: string, caller: Caller): Promise<JobEntity> {
    if (!UUID.test(id)) throw ApiError.jobNotFound();
    const { rows } = await this.pool.query<JobEntity>({ name: 'fp-job-by-id', text: JOB_BY_ID, values: [id] });
    const job = rows[0];
    if (!job || (!caller.admin && job.tenant !== caller.tenant)) throw ApiError.jobNotFound();
    return Object.assign(new JobEntity(), job);
  }

  async list(q: ListQuery, caller: Caller): Promise<{ jobs: JobEntity[]; nextCursor: string | null }> {
    const qb = this.ds.getRepository(JobEntity).createQueryBuilder('j');
    if (!caller.admin) qb.andWhere('j.tenant = :tenant', { tenant: caller.tenant });
    if (q.status) qb.andWhere('j.status = :status', { status: q.status });
    if (q.label) qb.andWhere('j.labels @> :labels::jsonb', { labels: JSON.stringify({ [q.label[0]]: q.label[1] }) });
    if (q.cursor) {
      qb.andWhere('(j.created_at, j.id) < (:cAt, :cId)', { cAt: q.cursor.createdAt, cId: q.cursor.id });
    }
    const rows = await qb
      .orderBy('j.created_at', 'DESC')
      .addOrderBy('j.id', 'DESC')
      .limit(q.limit + 1)
      .getMany();
    const jobs = rows.slice(0, q.limit);
    const last = jobs[jobs.length - 1];
    const nextCursor =
      rows.length > q.limit && last
        ? Buffer.from(JSON.stringify([last.createdAt.toISOString(), last.id])).toString('base64url')
        : null;
    return { jobs, nextCursor };
  }

  async cancel(id: string, caller: Caller): Promise<JobEntity> {
    const job = await this.get(id, caller);
    if (isTerminal(job.status) || job.status === JobStatus.Cleaned) {
      throw new ApiError(HttpStatus.CONFLICT, 'job_terminal', `job is already ${job.status}`);
    }
    if (job.status === JobStatus.Pending && (await transitionJob(this.ds, id, JobStatus.Cancelled))) {
      await this.queue.remove(id).catch(() => undefined);
      await this.redis.del(this.keys.jobSecrets(id));
      return this.get(id, caller);
    }
    // Starting or running, or claimed since we read it: whichever runner holds it kills it; the
    // flag covers a runner that has claimed it but not yet registered it.
    await this.redis.multi().set(this.keys.jobCancel(id), '1', 'EX', 24 * 3600).publish(this.keys.cancelChannel, id).exec();
    return this.get(id, caller);
  }

  async delete(id: string, caller: Caller): Promise<void> {
    const job = await this.get(id, caller);
    if (!isTerminal(job.status) && job.status !== JobStatus.Cleaned) {
      throw new ApiError(HttpStatus.CONFLICT, 'job_not_terminal', `job is ${job.status}; cancel it first`);
    }
    const [, affected] = (await this.ds.query(
      `DELETE FROM jobs WHERE id = $1 AND status = ANY($2::text[])`,
      [id, [JobStatus.Completed, JobStatus.Failed, JobStatus.TimedOut, JobStatus.Cancelled, JobStatus.Cleaned]],
    )) as [unknown[], number];
    if (affected === 0) throw new ApiError(HttpStatus.CONFLICT, 'job_not_terminal', 'job changed state; try again');
    await Promise.all([
      rm(join(this.config.logs.dir, logFileName(id)), { force: true }),
      rm(join(this.config.logs.dir, indexFileName(id)), { force: true }),
      // A head_tail job's tail segments, when its end was never composed (it ended elsewhere).
      rm(join(this.config.logs.dir, tailDirName(id)), { recursive: true, force: true }),
      this.redis.del(this.keys.jobLog(id), this.keys.jobSecrets(id), this.keys.jobCancel(id)),
    ]);
  }
}
