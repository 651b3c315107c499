import { loadConfig } from '@flashpods/config';
import { JobStatus, redisKeys } from '@flashpods/contracts';
import { createDataSource, JobEntity, migrate } from '@flashpods/database';
import Redis from 'ioredis';
import { randomUUID } from 'node:crypto';
import { readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { JobFactory } from '../../../test/support/job.factory';
import { createTestWorld, TestWorld } from '../../../test/support/test-env';
import { SweepProcessor } from './sweep.processor';
import { SweepsService } from './sweeps.service';

const exists = (p: string) => stat(p).then(() => true, () => false);
const ago = (ms: number) => new Date(Date.now() - ms);
const MIN = 60_000;
const DAY = 86_400_000;

describe('janitor sweeps (real Postgres, real files, real Redis)', () => {
  let world: TestWorld;
  let ds: DataSource;
  let redis: Redis;

  beforeAll(async () => {
    world = await createTestWorld();
    ds = await createDataSource(world.databaseUrl).initialize();
    await migrate(ds);
    redis = new Redis(world.env.REDIS_URL);
  });
  afterAll(async () => {
    const keys = await redis.keys(`${world.redisPrefix}:*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
    await ds.destroy();
    await world.dispose();
  });
  beforeEach(async () => {
    await ds.query('DELETE FROM jobs');
    for (const f of await readdir(world.logDir)) await rm(join(world.logDir, f));
  });

  function sweeps(env: Record<string, string> = {}): SweepsService {
    const config = loadConfig({ ...world.env, ...env });
    return new SweepsService(config, redis, redisKeys(config.redis.prefix), ds);
  }

  async function jobWithLog(status: JobStatus, finishedAt: Date | null, bytes: number): Promise<JobEntity> {
    const job = await JobFactory.create(ds, { status, finishedAt, startedAt: ago(2 * DAY) });
    await writeFile(join(world.logDir, `${job.id}.log`), Buffer.alloc(bytes, 'a'));
    await writeFile(join(world.logDir, `${job.id}.idx`), Buffer.alloc(32));
    return job;
  }
  const logOf = (job: JobEntity) => join(world.logDir, `${job.id}.log`);
  const statusOf = async (job: JobEntity) => (await ds.getRepository(JobEntity).findOneBy({ id: job.id }))?.status;

  it('TTL: deletes the logs of jobs terminal for longer than LOG_RETENTION_SECONDS and marks them cleaned', async () => {
    const old = await jobWithLog(JobStatus.Completed, ago(2 * MIN), 100);
    const oldFailed = await jobWithLog(JobStatus.Failed, ago(2 * MIN), 50);
    const fresh = await jobWithLog(JobStatus.Completed, ago(10_000), 100);
    const running = await jobWithLog(JobStatus.Running, null, 100);
    const result = await sweeps({ LOG_RETENTION_SECONDS: '60' }).ttl();
    expect(result).toEqual({ jobs: 2, files: 4, bytes: 100 + 50 + 64 });
    expect(await statusOf(old)).toBe(JobStatus.Cleaned);
    expect(await statusOf(oldFailed)).toBe(JobStatus.Cleaned);
    expect(await exists(logOf(old))).toBe(false);
    expect(await statusOf(fresh)).toBe(JobStatus.Completed);
    expect(await exists(logOf(fresh))).toBe(true);
    expect(await statusOf(running)).toBe(JobStatus.Running);
    expect(await exists(logOf(running))).toBe(true);
    expect(await sweeps({ LOG_RETENTION_SECONDS: '60' }).ttl()).toEqual({ jobs: 0, files: 0, bytes: 0 });
  });

  it('quota: deletes the oldest terminal logs first until under LOG_TOTAL_MAX_BYTES, never a running job', async () => {
    const oldest = await jobWithLog(JobStatus.Completed, ago(30 * MIN), 1000);
    const middle = await jobWithLog(JobStatus.Cancelled, ago(20 * MIN), 1000);
    const newest = await jobWithLog(JobStatus.Completed, ago(10 * MIN), 1000);
    const running = await jobWithLog(JobStatus.Running, null, 2000);
    // 5000 + 4 × 32 index bytes on disk; a quota of 3200 needs the two oldest gone.
    const result = await sweeps({ LOG_TOTAL_MAX_BYTES: '3200' }).quota();
    expect(result).toEqual({ jobs: 2, files: 4, bytes: 2064 });
    expect([await statusOf(oldest), await statusOf(middle), await statusOf(newest)]).toEqual([
      JobStatus.Cleaned,
      JobStatus.Cleaned,
      JobStatus.Completed,
    ]);
    expect(await exists(logOf(running))).toBe(true);
    // Over quota with only a running job's log left: nothing more is deleted.
    const again = await sweeps({ LOG_TOTAL_MAX_BYTES: '100' }).quota();
    expect(again.jobs).toBe(1);
    expect(await exists(logOf(running))).toBe(true);
    expect(await statusOf(running)).toBe(JobStatus.Running);
  });

  it('retention: deletes job records terminal for longer than JOB_RETENTION_DAYS, with their logs', async () => {
    const ancient = await jobWithLog(JobStatus.Completed, ago(31 * DAY), 10);
    const cleaned = await JobFactory.create(ds, { status: JobStatus.Cleaned, finishedAt: ago(40 * DAY) });
    const recent = await jobWithLog(JobStatus.Failed, ago(29 * DAY), 10);
    const result = await sweeps({ JOB_RETENTION_DAYS: '30' }).retention();
    expect(result).toEqual({ jobs: 2, files: 2, bytes: 42 });
    expect(await statusOf(ancient)).toBeUndefined();
    expect(await statusOf(cleaned)).toBeUndefined();
    expect(await exists(logOf(ancient))).toBe(false);
    expect(await statusOf(recent)).toBe(JobStatus.Failed);
  });

  it('orphans: removes old files with no job row and streams of jobs that are gone, keeps the rest', async () => {
    const orphan = join(world.logDir, `${randomUUID()}.log`);
    const youngOrphan = join(world.logDir, `${randomUUID()}.log`);
    await writeFile(orphan, 'x'.repeat(10));
    await writeFile(youngOrphan, 'y');
    const old = ago(20 * MIN);
    await utimes(orphan, old, old);
    const live = await jobWithLog(JobStatus.Running, null, 5);
    await utimes(logOf(live), old, old);
    const keys = redisKeys(world.redisPrefix);
    const goneJob = randomUUID();
    await redis.xadd(keys.jobLog(goneJob), '*', 't', 'status', 'e', '{}');
    await redis.xadd(keys.jobLog(live.id), '*', 't', 'status', 'e', '{}');
    const result = await sweeps().orphans();
    expect(result).toEqual({ jobs: 1, files: 1, bytes: 10 });
    expect(await exists(orphan)).toBe(false);
    expect(await exists(youngOrphan)).toBe(true);
    expect(await exists(logOf(live))).toBe(true);
    expect(await redis.exists(keys.jobLog(goneJob))).toBe(0);
    expect(await redis.exists(keys.jobLog(live.id))).toBe(1);
  });

  it('never runs the same sweep twice at once: a second janitor skips while the lock is held', async () => {
    const processor = (s: SweepsService) => new SweepProcessor(s, ds, redis, redisKeys(world.redisPrefix));
    const a = processor(sweeps());
    const b = processor(sweeps());
    const holder = ds.createQueryRunner();
    await holder.connect();
    await holder.query('SELECT pg_advisory_lock($1)', [7_262_024_101]);
    try {
      expect(await b.runLocked('ttl-sweep' as never)).toEqual({ sweep: 'ttl-sweep', skipped: 'locked' });
    } finally {
      await holder.query('SELECT pg_advisory_unlock($1)', [7_262_024_101]);
      await holder.release();
    }
    await jobWithLog(JobStatus.Completed, ago(3 * DAY), 7);
    const [ra, rb] = await Promise.all([a.runLocked('ttl-sweep' as never), b.runLocked('ttl-sweep' as never)]);
    const ran = [ra, rb].filter((r) => !('skipped' in r));
    const cleanedTotal = ran.reduce((n, r) => n + ('jobs' in r ? r.jobs : 0), 0);
    expect(cleanedTotal).toBe(1);
    const stats = await redis.hgetall(redisKeys(world.redisPrefix).janitorStats('ttl-sweep'));
    expect(Number(stats.jobs_total)).toBe(1);
    expect(Number(stats.last_ms)).toBeGreaterThanOrEqual(0);
  });
});
