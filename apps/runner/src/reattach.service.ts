import { Inject, Injectable, Logger } from '@nestjs/common';
import { CONFIG, FlashpodsConfig, REDIS, REDIS_KEYS } from '@flashpods/config';
import { ACTIVE_STATUSES, RedisKeys } from '@flashpods/contracts';
import { JobEntity } from '@flashpods/database';
import Redis from 'ioredis';
import { DataSource } from 'typeorm';
import { EXECUTOR, Executor } from './executors/executor';
import { parseProgress } from './job-log.publisher';
import { JobRunnerService } from './job-runner.service';

/**
 * At start, finds the workloads a previous run of this runner (same RUNNER_ID) left behind and
 * resumes the ones whose job is still active; the others are removed.
 */
@Injectable()
export class ReattachService {
  private readonly log = new Logger(ReattachService.name);

  constructor(
    @Inject(CONFIG) private readonly config: FlashpodsConfig,
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(REDIS_KEYS) private readonly keys: RedisKeys,
    @Inject(EXECUTOR) private readonly executor: Executor,
    private readonly runner: JobRunnerService,
    private readonly ds: DataSource,
  ) {}

  /** Resumes what can be resumed; returns how many jobs were picked up again. */
  async reattach(): Promise<number> {
    const runnerId = this.config.runner.id;
    let resumed = 0;
    for (const orphan of await this.executor.findOrphans(runnerId)) {
      const job = await this.ds.getRepository(JobEntity).findOneBy({ id: orphan.jobId });
      if (!job || !ACTIVE_STATUSES.includes(job.status) || job.runnerId !== runnerId) {
        this.log.log(`removing container of job ${orphan.jobId} (${job?.status ?? 'no such job'})`);
        await this.executor.discard(orphan.handle);
        continue;
      }
      const progress = parseProgress(await this.redis.hgetall(this.keys.jobProgress(job.id)));
      this.log.log(`re-attaching to job ${job.id} after line ${progress.seq}`);
      void this.runner.resume(job, orphan, progress).catch((err: Error) => this.log.error(`resume ${job.id}: ${err.message}`));
      resumed++;
    }
    return resumed;
  }
}
