import { Inject, Injectable, Logger } from '@nestjs/common';
import { CONFIG, FlashpodsConfig, REDIS, REDIS_KEYS, RedisClient } from '@flashpods/config';
import { ACTIVE_STATUSES, JobErrorCode, JobStatus, RedisKeys } from '@flashpods/contracts';
import { JobEntity } from '@flashpods/database';
import { endJobThroughStream, parseProgress, StreamEndedError, takeJobStream } from '@flashpods/job-stream';
import { DataSource, In } from 'typeorm';
import { EXECUTOR, Executor } from './executors/executor';
import { JobRunnerService } from './job-runner.service';

/**
 * At start, finds the workloads a previous run of this runner (same RUNNER_ID) left behind and
 * resumes the ones whose job is still active; the others are removed. A job this runner held
 * whose workload is gone (removed, its engine restarted, or a process executor's child that died
 * with the runner) cannot be resumed: it ends at once as `runner_lost`.
 */
@Injectable()
export class ReattachService {
  private readonly log = new Logger(ReattachService.name);

  constructor(
    @Inject(CONFIG) private readonly config: FlashpodsConfig,
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(REDIS_KEYS) private readonly keys: RedisKeys,
    @Inject(EXECUTOR) private readonly executor: Executor,
    private readonly runner: JobRunnerService,
    private readonly ds: DataSource,
  ) {}

  /** Resumes what can be resumed; returns how many jobs were picked up again. */
  async reattach(): Promise<number> {
    const runnerId = this.config.runner.id;
    let resumed = 0;
    const orphans = await this.executor.findOrphans(runnerId);
    for (const orphan of orphans) {
      const job = await this.ds.getRepository(JobEntity).findOneBy({ id: orphan.jobId });
      if (!job || !ACTIVE_STATUSES.includes(job.status) || job.runnerId !== runnerId) {
        this.log.log(`removing container of job ${orphan.jobId} (${job?.status ?? 'no such job'})`);
        await this.executor.discard(orphan.handle);
        continue;
      }
      let token: string;
      try {
        token = await takeJobStream(this.redis, this.keys, job.id, runnerId);
      } catch (err) {
        if (!(err instanceof StreamEndedError)) throw err;
        this.log.log(`job ${job.id} has already ended on its stream; removing its container`);
        await this.executor.discard(orphan.handle);
        continue;
      }
      const progress = parseProgress(await this.redis.hgetall(this.keys.jobProgress(job.id)));
      this.log.log(`re-attaching to job ${job.id} after line ${progress.seq}`);
      this.runner.resume(job, orphan, token, progress).catch((err: Error) => this.log.error(`resume ${job.id}: ${err.message}`));
      resumed++;
    }
    await this.endJobsWithoutWorkload(new Set(orphans.map((o) => o.jobId)));
    return resumed;
  }

  private async endJobsWithoutWorkload(found: Set<string>): Promise<void> {
    const runnerId = this.config.runner.id;
    const held = await this.ds.getRepository(JobEntity).findBy({ runnerId, status: In([...ACTIVE_STATUSES]) });
    for (const job of held.filter((j) => !found.has(j.id))) {
      const message = `runner ${runnerId} restarted and found no ${this.executor.kind === 'docker' ? 'container' : 'process'} for the job`;
      this.log.warn(`job ${job.id}: ${message}; failing it as runner_lost`);
      await endJobThroughStream(
        this.redis,
        this.keys,
        job.id,
        runnerId,
        { ...this.config.stream, logMaxBytes: this.config.logs.maxBytes, logKeep: job.logKeep },
        `failed: ${JobErrorCode.RunnerLost}: ${message}`,
        { status: JobStatus.Failed, at: Date.now(), runnerId, exitCode: null, error: { code: JobErrorCode.RunnerLost, message } },
      ).catch((err: Error) => {
        if (!(err instanceof StreamEndedError)) throw err;
      });
    }
  }
}
