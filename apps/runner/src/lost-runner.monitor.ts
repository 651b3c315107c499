import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { CONFIG, FlashpodsConfig, REDIS, REDIS_KEYS } from '@flashpods/config';
import { ACTIVE_STATUSES, JobErrorCode, JobStatus, RedisKeys } from '@flashpods/contracts';
import Redis from 'ioredis';
import { DataSource } from 'typeorm';
import { EXECUTOR, Executor } from './executors/executor';
import { parseProgress } from './job-log.publisher';
import { JobRunnerService } from './job-runner.service';

/**
 * Every runner proves it is alive with a heartbeat key (TTL: three heartbeats) and, one at a
 * time, looks for jobs whose runner has stopped proving it. Such a job ends `failed` with
 * `runner_lost` through its own stream, after the lines its runner shipped, and its container is
 * removed wherever this runner's engine can see it. A runner that comes back in time re-attaches
 * instead (same RUNNER_ID).
 */
@Injectable()
export class LostRunnerMonitor implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly log = new Logger(LostRunnerMonitor.name);
  private timer: NodeJS.Timeout | undefined;

  constructor(
    @Inject(CONFIG) private readonly config: FlashpodsConfig,
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(REDIS_KEYS) private readonly keys: RedisKeys,
    @Inject(EXECUTOR) private readonly executor: Executor,
    private readonly runner: JobRunnerService,
    private readonly ds: DataSource,
  ) {}

  private get windowSeconds(): number {
    return this.config.runner.heartbeatSeconds * 3;
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.beat();
    this.timer = setInterval(() => {
      void this.beat()
        .then(() => this.sweep())
        .catch((err: Error) => this.log.warn(`heartbeat: ${err.message}`));
    }, this.config.runner.heartbeatSeconds * 1000);
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
  }

  private async beat(): Promise<void> {
    await this.redis.set(
      this.keys.runnerAlive(this.config.runner.id),
      JSON.stringify({ at: Date.now(), jobs: this.runner.runningJobIds }),
      'EX',
      this.windowSeconds,
    );
  }

  /** Declares lost the jobs of runners silent for the whole window. Returns their ids. */
  async sweep(): Promise<string[]> {
    const hb = this.config.runner.heartbeatSeconds;
    const locked = await this.redis.set(this.keys.lostRunnerCheck, this.config.runner.id, 'PX', hb * 1000, 'NX');
    if (!locked) return [];
    const rows: { id: string; runner_id: string }[] = await this.ds.query(
      `SELECT id::text, runner_id FROM jobs WHERE status = ANY($1::text[]) AND runner_id IS NOT NULL
       AND started_at < now() - make_interval(secs => $2)`,
      [[...ACTIVE_STATUSES], this.windowSeconds],
    );
    if (rows.length === 0) return [];
    const runners = [...new Set(rows.map((r) => r.runner_id))];
    const alive = await this.redis.mget(...runners.map((r) => this.keys.runnerAlive(r)));
    const dead = new Set(runners.filter((_, i) => alive[i] === null));
    const lost: string[] = [];
    for (const row of rows.filter((r) => dead.has(r.runner_id))) {
      if (!(await this.redis.set(this.keys.jobLost(row.id), this.config.runner.id, 'EX', 3600, 'NX'))) continue;
      await this.declareLost(row.id, row.runner_id);
      lost.push(row.id);
    }
    return lost;
  }

  private async declareLost(jobId: string, runnerId: string): Promise<void> {
    const message = `runner ${runnerId} sent no heartbeat for ${this.windowSeconds} s`;
    this.log.warn(`job ${jobId}: ${message}; failing it as runner_lost`);
    const progress = parseProgress(await this.redis.hgetall(this.keys.jobProgress(jobId)));
    const publisher = this.runner.publisherFor(jobId, progress);
    // Make sure a persister owns the job: the lost runner may have died before announcing it.
    await this.redis.xadd(this.keys.activeJobs, '*', 'job', jobId);
    await publisher.system(`failed: runner_lost: ${message}`);
    await publisher.status({
      status: JobStatus.Failed,
      at: Date.now(),
      runnerId,
      exitCode: null,
      error: { code: JobErrorCode.RunnerLost, message },
    });
    for (const orphan of await this.executor.findOrphans()) {
      if (orphan.jobId === jobId) await this.executor.discard(orphan.handle);
    }
  }
}
