import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { CONFIG, FlashpodsConfig, getMany, REDIS, REDIS_KEYS, RedisClient } from '@flashpods/config';
import { ACTIVE_STATUSES, JobStatus, RedisKeys } from '@flashpods/contracts';
import { DataSource } from 'typeorm';
import { EXECUTOR, Executor } from './executors/executor';
import { JobRunnerService } from './job-runner.service';

/** The container sweep runs at most this often. */
const SWEEP_EVERY_MS = 10_000;

/**
 * Every RUNNER_HEARTBEAT_SECONDS: proves this runner alive (a key with a TTL of three beats,
 * which the janitor's liveness sweep reads), re-checks the cancel flag of every job it runs (a
 * cancel published while the subscriber was reconnecting is not lost), and sweeps the engine for
 * containers of this installation whose job has ended or is gone (a removal that failed, a
 * runner that died after shipping the end).
 */
@Injectable()
export class RunnerHeartbeat implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly log = new Logger(RunnerHeartbeat.name);
  private timer: NodeJS.Timeout | undefined;
  private lastSweep = 0;

  constructor(
    @Inject(CONFIG) private readonly config: FlashpodsConfig,
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(REDIS_KEYS) private readonly keys: RedisKeys,
    @Inject(EXECUTOR) private readonly executor: Executor,
    private readonly runner: JobRunnerService,
    private readonly ds: DataSource,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.beat();
    this.timer = setInterval(() => {
      this.tick().catch((err: Error) => this.log.warn(`heartbeat: ${err.message}`));
    }, this.config.runner.heartbeatSeconds * 1000);
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
  }

  async tick(): Promise<void> {
    await this.beat();
    await this.recheckCancels();
    if (Date.now() - this.lastSweep >= SWEEP_EVERY_MS) {
      this.lastSweep = Date.now();
      const removed = await this.sweepContainers();
      if (removed.length) this.log.log(`container sweep removed ${removed.length}: ${removed.join(', ')}`);
    }
  }

  /**
   * Sets the heartbeat key, then clears any suspicion the liveness sweep recorded while it was
   * missing. Two commands, not a MULTI: the keys are in different slots on a Redis Cluster. In
   * this order nothing is lost between them: a sweep that sees the fresh heartbeat clears the
   * suspicion itself.
   */
  private async beat(): Promise<void> {
    const id = this.config.runner.id;
    await this.redis.set(
      this.keys.runnerAlive(id), JSON.stringify({ at: Date.now(), jobs: this.runner.runningJobIds }), 'EX', this.config.runner.heartbeatSeconds * 3,
    );
    await this.redis.del(this.keys.runnerSuspect(id));
  }

  private async recheckCancels(): Promise<void> {
    const ids = this.runner.runningJobIds;
    if (ids.length === 0) return;
    const flags = await getMany(this.redis, ids.map((id) => this.keys.jobCancel(id)));
    ids.forEach((id, i) => {
      if (flags[i] !== null && this.runner.kill(id, 'cancel')) this.log.log(`cancelling job ${id} (flag seen on heartbeat)`);
    });
  }

  /** Removes containers of this installation whose job has ended or no longer exists. Returns their job ids. */
  async sweepContainers(): Promise<string[]> {
    const running = new Set(this.runner.runningJobIds);
    const candidates = (await this.executor.list()).filter((w) => !running.has(w.jobId));
    if (candidates.length === 0) return [];
    const rows: { id: string; status: JobStatus }[] = await this.ds.query(
      `SELECT id::text, status FROM jobs WHERE id = ANY($1::uuid[])`,
      [candidates.map((w) => w.jobId).filter((id) => /^[0-9a-f-]{36}$/i.test(id))],
    );
    const status = new Map(rows.map((r) => [r.id, r.status]));
    const removed: string[] = [];
    for (const w of candidates) {
      const s = status.get(w.jobId);
      if (s !== undefined && ACTIVE_STATUSES.includes(s)) continue; // another runner's, or ours being resumed
      if (s === JobStatus.Pending) continue;
      try {
        await this.executor.discard(w.handle);
        removed.push(w.jobId);
      } catch (err) {
        this.log.warn(`container sweep: ${w.handle.slice(0, 12)}: ${(err as Error).message}`);
      }
    }
    return removed;
  }
}
