import { Processor, WorkerHost } from '@nestjs/bullmq';
import { Inject, Logger } from '@nestjs/common';
import { REDIS, REDIS_KEYS, RedisClient } from '@flashpods/config';
import { JobName, QueueName, RedisKeys, SweepJobName, SWEEP_JOB_NAMES } from '@flashpods/contracts';
import { Job } from 'bullmq';
import { DataSource } from 'typeorm';
import { LivenessSweep } from './liveness-sweep.service';
import { SweepResult, SweepsService } from './sweeps.service';

/** Advisory lock ids, one per sweep: a sweep never runs twice at once, whatever the janitor count. */
const LOCK_IDS: Record<SweepJobName, number> = {
  [JobName.TtlSweep]: 7_262_024_101,
  [JobName.QuotaSweep]: 7_262_024_102,
  [JobName.RetentionSweep]: 7_262_024_103,
  [JobName.OrphanSweep]: 7_262_024_104,
  [JobName.LivenessSweep]: 7_262_024_105,
};

export type SweepOutcome = (SweepResult & { sweep: SweepJobName; ms: number }) | { sweep: SweepJobName; skipped: 'locked' };

// Sweeps run side by side (each under its own lock), so a long TTL sweep never delays the liveness sweep.
@Processor(QueueName.Janitor, { concurrency: 5 })
export class SweepProcessor extends WorkerHost {
  private readonly log = new Logger(SweepProcessor.name);

  constructor(
    private readonly sweeps: SweepsService,
    private readonly ds: DataSource,
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(REDIS_KEYS) private readonly keys: RedisKeys,
    private readonly liveness?: LivenessSweep,
  ) {
    super();
  }

  async process(job: Job): Promise<SweepOutcome> {
    const sweep = job.name as SweepJobName;
    if (!SWEEP_JOB_NAMES.includes(sweep)) throw new Error(`unknown sweep ${job.name}`);
    return this.runLocked(sweep);
  }

  /** Runs one sweep under its Postgres advisory lock; skips when another janitor holds it. */
  async runLocked(sweep: SweepJobName): Promise<SweepOutcome> {
    const runner = this.ds.createQueryRunner();
    await runner.connect();
    try {
      const [{ locked }] = (await runner.query('SELECT pg_try_advisory_lock($1) AS locked', [LOCK_IDS[sweep]])) as {
        locked: boolean;
      }[];
      if (!locked) {
        if (sweep !== JobName.LivenessSweep) this.log.log(`${sweep}: another janitor is sweeping; skipped`);
        return { sweep, skipped: 'locked' };
      }
      try {
        const started = Date.now();
        const result = await this.run(sweep);
        const outcome = { sweep, ...result, ms: Date.now() - started };
        // The liveness sweep runs every few seconds: only what it did is worth a line.
        if (sweep !== JobName.LivenessSweep || result.jobs > 0) {
          this.log.log(`${sweep}: ${result.jobs} jobs, ${result.files} files, ${result.bytes} bytes in ${outcome.ms} ms`);
        }
        await this.record(outcome);
        return outcome;
      } finally {
        await runner.query('SELECT pg_advisory_unlock($1)', [LOCK_IDS[sweep]]);
      }
    } finally {
      await runner.release();
    }
  }

  private run(sweep: SweepJobName): Promise<SweepResult> {
    switch (sweep) {
      case JobName.TtlSweep:
        return this.sweeps.ttl();
      case JobName.QuotaSweep:
        return this.sweeps.quota();
      case JobName.RetentionSweep:
        return this.sweeps.retention();
      case JobName.OrphanSweep:
        return this.sweeps.orphans();
      case JobName.LivenessSweep:
        if (!this.liveness) throw new Error('this processor was built without the liveness sweep');
        return this.liveness.run();
    }
  }

  /** Totals and the last run of each sweep, in Redis: a record shared by every janitor (metrics are per janitor, janitor.metrics.ts). */
  private async record(o: SweepResult & { sweep: SweepJobName; ms: number }): Promise<void> {
    const key = this.keys.janitorStats(o.sweep);
    await this.redis
      .multi()
      .hincrby(key, 'runs', 1)
      .hincrby(key, 'jobs_total', o.jobs)
      .hincrby(key, 'files_total', o.files)
      .hincrby(key, 'bytes_total', o.bytes)
      .hset(key, 'last_jobs', o.jobs, 'last_files', o.files, 'last_bytes', o.bytes, 'last_ms', o.ms, 'last_at', Date.now())
      .exec();
  }
}
