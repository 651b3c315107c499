import { loadConfig } from '@flashpods/config';
import { JobStatus, redisKeys } from '@flashpods/contracts';
import { createDataSource, JobEntity, migrate } from '@flashpods/database';
import Redis from 'ioredis';
import { randomUUID } from 'node:crypto';
import { mkdir, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { JobFactory } from '../../../test/support/job.factory';
import { createTestWorld, TestWorld, waitFor, within } from '../../../test/support/test-env';
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
    for (const f of await readdir(world.logDir)) await rm(join(world.logDir, f), { recursive: true });
  });

  function sweeps(env: Record<string, string> = {}): SweepsService {
    const config = loadConfig({ ...world.env, ...env });
    return new SweepsService(config, redis, redisKeys(config.redis.prefix), ds);
  }

  /** A job with a log of `bytes` and a one-record index, its row saying so as the persister would. */
  async function jobWithLog(status: JobStatus, finishedAt: Date | null, bytes: number): Promise<JobEntity> {
    const job = await JobFactory.create(ds, { status, finishedAt, startedAt: ago(2 * DAY), logBytes: bytes, logLines: 1 });
    await writeFile(join(world.logDir, `${job.id}.log`), Buffer.alloc(bytes, 'a'));
    await writeFile(join(world.logDir, `${job.id}.idx`), Buffer.alloc(32));
    return job;
  }
  const logOf = (job: JobEntity) => join(world.logDir, `${job.id}.log`);
  const statusOf = async (job: JobEntity) => (await ds.getRepository(JobEntity).findOneBy({ id: job.id }))?.status;

  /** A head_tail job's tail segments directory, as a persister that never composed it leaves it. */
  async function tailDirOf(id: string): Promise<string> {
    // Only a head_tail job has one (an orphan's id has no row: nothing to update).
    await ds.query(`UPDATE jobs SET log_keep = 'head_tail' WHERE id = $1`, [id]);
    const dir = join(world.logDir, `${id}.tail`);
    await mkdir(dir);
    await writeFile(join(dir, 'head'), '{"lines":1,"bytes":10,"lastSeq":1,"firstTs":0}'); // 46 bytes
    await writeFile(join(dir, '2.log'), Buffer.alloc(30, 'b'));
    await writeFile(join(dir, '2.idx'), Buffer.alloc(32));
    return dir;
  }

  it('TTL, retention and orphans remove a head_tail job\'s tail segments with its log, counting each file', async () => {
    const ttl = await jobWithLog(JobStatus.Failed, ago(2 * MIN), 100);
    const ttlTail = await tailDirOf(ttl.id);
    expect(await sweeps({ LOG_RETENTION_SECONDS: '60' }).ttl()).toEqual({ jobs: 1, files: 5, bytes: 100 + 32 + 46 + 30 + 32 });
    expect(await exists(ttlTail)).toBe(false);

    const old = await jobWithLog(JobStatus.Completed, ago(40 * DAY), 10);
    const oldTail = await tailDirOf(old.id);
    expect(await sweeps().retention()).toEqual({ jobs: 1, files: 5, bytes: 10 + 32 + 46 + 30 + 32 });
    expect(await exists(oldTail)).toBe(false);

    const orphanTail = await tailDirOf(randomUUID());
    const longAgo = ago(DAY);
    await utimes(orphanTail, longAgo, longAgo);
    expect(await sweeps().orphans()).toMatchObject({ files: 3, bytes: 46 + 30 + 32 });
    expect(await exists(orphanTail)).toBe(false);
  });

  it('quota: a cleaned job\'s leftover tail segments go with its log and count as freed', async () => {
    const done = await jobWithLog(JobStatus.Completed, ago(MIN), 100);
    const tail = await tailDirOf(done.id);
    // The rows say 100 + 32: a quota of 100 sends the job; what it frees includes the 108 bytes of its tail.
    expect(await sweeps({ LOG_TOTAL_MAX_BYTES: '100' }).quota()).toEqual({ jobs: 1, files: 5, bytes: 240 });
    expect(await exists(tail)).toBe(false);
  });

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

  it('TTL over several batches (marked while the last one is deleted): every expired job cleaned once, its files gone, the counts exact', async () => {
    // 2,345 expired jobs: two full batches of the sweep's 1,000 and a part one; 7 recent ones stay.
    const expired: { id: string }[] = await ds.query(
      `INSERT INTO jobs (id, tenant, status, image, timeout_seconds, limits, finished_at, log_bytes, log_lines)
       SELECT gen_random_uuid(), 'admin', 'completed', 'x', 1, '{}', now() - interval '2 days' + g * interval '1 ms', 3, 1
       FROM generate_series(1, 2345) g RETURNING id::text`,
    );
    const recent: { id: string }[] = await ds.query(
      `INSERT INTO jobs (id, tenant, status, image, timeout_seconds, limits, finished_at, log_bytes, log_lines)
       SELECT gen_random_uuid(), 'admin', 'failed', 'x', 1, '{}', now(), 3, 1 FROM generate_series(1, 7) RETURNING id::text`,
    );
    for (const { id } of [...expired, ...recent]) {
      await writeFile(join(world.logDir, `${id}.log`), 'ab\n');
      await writeFile(join(world.logDir, `${id}.idx`), Buffer.alloc(32));
    }
    // One index already gone: neither counted as a file deleted nor as bytes freed.
    await rm(join(world.logDir, `${expired[1500].id}.idx`));
    expect(await sweeps({ LOG_RETENTION_SECONDS: '3600' }).ttl()).toEqual({ jobs: 2345, files: 2 * 2345 - 1, bytes: 2345 * (3 + 32) - 32 });
    const left = (await readdir(world.logDir)).sort();
    expect(left).toEqual(recent.flatMap(({ id }) => [`${id}.idx`, `${id}.log`]).sort());
    const counts: { status: string; n: string }[] = await ds.query(`SELECT status, count(*)::text AS n FROM jobs GROUP BY status ORDER BY status`);
    expect(counts).toEqual([{ status: 'cleaned', n: '2345' }, { status: 'failed', n: '7' }]);
  });

  it('TTL: a file it cannot delete fails the sweep with its error and stops its deletes; the jobs stay marked (the orphan sweep takes their files)', async () => {
    const jobs: JobEntity[] = [];
    for (let i = 0; i < 40; i++) jobs.push(await jobWithLog(JobStatus.Completed, ago(3 * MIN - i * 1000), 10));
    // A directory where the first job's index should be: unlink(2) refuses it (EISDIR).
    await rm(join(world.logDir, `${jobs[0].id}.idx`));
    await mkdir(join(world.logDir, `${jobs[0].id}.idx`));
    await expect(sweeps({ LOG_RETENTION_SECONDS: '60' }).ttl()).rejects.toMatchObject({ code: 'EISDIR' });
    // The oldest job's files go first, so the failure comes among the first deletes: the 32 then in
    // flight end, the deletes after them do not start. Of the 80 entries, more than half are left,
    // of jobs all marked cleaned.
    expect((await readdir(world.logDir)).length).toBeGreaterThan(40);
    for (const job of jobs) expect(await statusOf(job)).toBe(JobStatus.Cleaned);
  });

  it('TTL and quota mark a job cleaned before deleting its files: a terminal job never has its log missing', async () => {
    for (const sweep of [(s: SweepsService) => s.ttl(), (s: SweepsService) => s.quota()]) {
      const job = await jobWithLog(JobStatus.Completed, ago(2 * MIN), 100);
      // Hold the job's row, so the sweep's UPDATE waits, and look at the files while it does.
      const holder = ds.createQueryRunner();
      await holder.connect();
      await holder.startTransaction();
      let filesWhileWaiting: boolean;
      let running: Promise<unknown>;
      try {
        await holder.query('SELECT id FROM jobs WHERE id = $1 FOR UPDATE', [job.id]);
        running = sweep(sweeps({ LOG_RETENTION_SECONDS: '60', LOG_TOTAL_MAX_BYTES: '1' }));
        await waitFor(
          'the sweep to wait on the row lock',
          async () => ((await ds.query(`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`)).length ? true : undefined),
          10000,
          20,
        );
        filesWhileWaiting = (await exists(logOf(job))) && (await statusOf(job)) === JobStatus.Completed;
      } finally {
        await holder.rollbackTransaction();
        await holder.release();
      }
      await running!;
      expect(filesWhileWaiting).toBe(true);
      expect(await statusOf(job)).toBe(JobStatus.Cleaned);
      expect(await exists(logOf(job))).toBe(false);
    }
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

  it('quota at its edge: usage exactly at LOG_TOTAL_MAX_BYTES deletes nothing, one byte more deletes the oldest only', async () => {
    const oldest = await jobWithLog(JobStatus.Completed, ago(30 * MIN), 1000);
    const newest = await jobWithLog(JobStatus.Failed, ago(10 * MIN), 1000);
    // 2 × (1000 + 32) = 2064 bytes stored.
    expect(await sweeps({ LOG_TOTAL_MAX_BYTES: '2064' }).quota()).toEqual({ jobs: 0, files: 0, bytes: 0 });
    expect(await sweeps({ LOG_TOTAL_MAX_BYTES: '2063' }).quota()).toEqual({ jobs: 1, files: 2, bytes: 1032 });
    expect([await statusOf(oldest), await statusOf(newest)]).toEqual([JobStatus.Cleaned, JobStatus.Failed]);
  });

  it('quota: usage comes from the job rows, not from reading the disk', async () => {
    // The rows say 100 + 32 bytes each; the files on disk are far larger. A sweep that summed the
    // directory would delete both; one that trusts the rows (kept exact by the persister) deletes none.
    const a = await jobWithLog(JobStatus.Completed, ago(30 * MIN), 100);
    const b = await jobWithLog(JobStatus.Completed, ago(20 * MIN), 100);
    for (const job of [a, b]) await writeFile(logOf(job), Buffer.alloc(50_000, 'x'));
    expect(await sweeps({ LOG_TOTAL_MAX_BYTES: '300' }).quota()).toEqual({ jobs: 0, files: 0, bytes: 0 });
    // And the bytes it reports freeing are the rows' figures too.
    expect(await sweeps({ LOG_TOTAL_MAX_BYTES: '200' }).quota()).toEqual({ jobs: 1, files: 2, bytes: 132 });
    expect(await exists(logOf(a))).toBe(false);
    expect(await exists(logOf(b))).toBe(true);
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

  it('never runs the same sweep twice at once: a second janitor skips while the first is sweeping', async () => {
    // Two janitors as in production: each its own Postgres pool and Redis connection.
    const otherDs = await createDataSource(world.databaseUrl).initialize();
    const otherRedis = new Redis(world.env.REDIS_URL);
    const keys = redisKeys(world.redisPrefix);
    const a = new SweepProcessor(sweeps(), ds, redis, keys);
    const config = loadConfig(world.env);
    const b = new SweepProcessor(new SweepsService(config, otherRedis, keys, otherDs), otherDs, otherRedis, keys);
    const blocker = ds.createQueryRunner();
    try {
      const job = await jobWithLog(JobStatus.Completed, ago(3 * DAY), 7);
      // Hold the job's row: janitor A's sweep takes its lock, finds the job and waits on this row to
      // mark it cleaned (files go only after that), so it is observably mid-sweep.
      await blocker.connect();
      await blocker.startTransaction();
      await blocker.query('SELECT id FROM jobs WHERE id = $1 FOR UPDATE', [job.id]);
      const startedA = Date.now();
      const runA = a.runLocked('ttl-sweep' as never);
      await waitFor('janitor A blocked inside its sweep', async () => {
        const rows: unknown[] = await otherDs.query(
          `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%UPDATE jobs SET status%'`,
        );
        return rows.length === 1 ? true : undefined;
      });
      // Marked first, deleted after: while the mark waits, the job is not cleaned and its log is whole.
      expect(await exists(logOf(job))).toBe(true);
      // While A sweeps, B starts the same sweep: it must not run it. (A B that ran it would wait on
      // the same row; the deadline turns that into a failure here rather than a hung test.)
      expect(await within(3000, b.runLocked('ttl-sweep' as never))).toEqual({ sweep: 'ttl-sweep', skipped: 'locked' });
      // A different sweep is not held up by the TTL sweep's lock.
      expect(await b.runLocked('retention-sweep' as never)).toMatchObject({ sweep: 'retention-sweep', jobs: 0 });
      const held = 300;
      await new Promise((r) => setTimeout(r, held));
      await blocker.commitTransaction();
      const ra = await runA;
      const elapsedA = Date.now() - startedA;
      expect(ra).toMatchObject({ sweep: 'ttl-sweep', jobs: 1, files: 2, bytes: 7 + 32 });
      expect(await statusOf(job)).toBe(JobStatus.Cleaned);
      // The lock is released with the sweep: B can now run it (and finds nothing left).
      expect(await b.runLocked('ttl-sweep' as never)).toMatchObject({ sweep: 'ttl-sweep', jobs: 0, files: 0, bytes: 0 });
      const stats = await redis.hgetall(keys.janitorStats('ttl-sweep'));
      expect(stats).toMatchObject({ runs: '2', jobs_total: '1', files_total: '2', bytes_total: '39', last_jobs: '0' });
      // A's run lasted at least as long as the row was held, and no longer than we waited for it.
      const ms = 'ms' in ra ? ra.ms : -1;
      expect(ms).toBeGreaterThanOrEqual(held);
      expect(ms).toBeLessThanOrEqual(elapsedA);
    } finally {
      if (blocker.isTransactionActive) await blocker.rollbackTransaction();
      await blocker.release();
      otherRedis.disconnect();
      await otherDs.destroy();
    }
  });

  it('records the duration of the last run of a sweep', async () => {
    const keys = redisKeys(world.redisPrefix);
    const p = new SweepProcessor(sweeps(), ds, redis, keys);
    const blocker = ds.createQueryRunner();
    await blocker.connect();
    try {
      // The retention sweep waits on a lock on the jobs table for `held` ms: its last_ms says so.
      await blocker.startTransaction();
      await blocker.query('LOCK TABLE jobs IN EXCLUSIVE MODE');
      const started = Date.now();
      const run = p.runLocked('retention-sweep' as never);
      await waitFor('the retention sweep blocked on the table lock', async () => {
        const rows: unknown[] = await ds.query(
          `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%DELETE FROM jobs%'`,
        );
        return rows.length === 1 ? true : undefined;
      });
      const held = 400;
      await new Promise((r) => setTimeout(r, held));
      await blocker.commitTransaction();
      const outcome = await run;
      const elapsed = Date.now() - started;
      const stats = await redis.hgetall(keys.janitorStats('retention-sweep'));
      expect(Number(stats.last_ms)).toBe('ms' in outcome ? outcome.ms : NaN);
      expect(Number(stats.last_ms)).toBeGreaterThanOrEqual(held);
      expect(Number(stats.last_ms)).toBeLessThanOrEqual(elapsed);
      expect(Number(stats.last_at)).toBeGreaterThanOrEqual(started);
      expect(Number(stats.last_at)).toBeLessThanOrEqual(Date.now());
    } finally {
      if (blocker.isTransactionActive) await blocker.rollbackTransaction();
      await blocker.release();
    }
  });
});
