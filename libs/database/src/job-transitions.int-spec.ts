import { JobStatus, LogMode } from '@flashpods/contracts';
import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { JobFactory } from '../../../test/support/job.factory';
import { createTestWorld, TestWorld } from '../../../test/support/test-env';
import { createDataSource, migrate, MIGRATIONS } from './data-source.factory';
import { JobEntity } from './job.entity';
import { claimJob, LogStats, transitionJob, transitionJobWithStats, writeLogStats, writeManyLogStats } from './job-transitions';

// One database world for both groups: the same set-up, made once.
let world: TestWorld;
let ds: DataSource;
beforeAll(async () => {
  world = await createTestWorld();
  ds = await createDataSource(world.databaseUrl).initialize();
  await migrate(ds);
});
afterAll(async () => {
  await ds.destroy();
  await world.dispose();
});

describe('transitionJob (real Postgres)', () => {
  it('runs migrations once when several services start at the same moment on a fresh database', async () => {
    const expected = MIGRATIONS.map((m) => m.name).sort();
    // Several rounds, each on its own empty database: without the lock the services race to
    // create the same tables and one of them fails (or a migration is recorded twice).
    for (let round = 0; round < 3; round++) {
      const fresh = await createTestWorld();
      try {
        const services = await Promise.all([1, 2, 3].map(() => createDataSource(fresh.databaseUrl).initialize()));
        try {
          const applied = await Promise.all(services.map((s) => migrate(s)));
          expect(applied.flat().sort()).toEqual(expected);
          const rows: { name: string }[] = await services[0].query('SELECT name FROM migrations ORDER BY name');
          expect(rows.map((r) => r.name).sort()).toEqual(expected);
          const tables: { t: string }[] = await services[0].query(
            `SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`,
          );
          expect(tables.map((r) => r.t)).toEqual(['api_tokens', 'jobs', 'migrations']);
          // And a later start applies nothing.
          expect(await migrate(services[1])).toEqual([]);
        } finally {
          await Promise.all(services.map((s) => s.destroy()));
        }
      } finally {
        await fresh.dispose();
      }
    }
  });

  it('moves only along the lifecycle and stamps the time', async () => {
    const job = await JobFactory.create(ds);
    expect(await transitionJob(ds, job.id, JobStatus.Running)).toBe(false);
    expect(await transitionJob(ds, job.id, JobStatus.Starting, { runnerId: 'r1' })).toBe(true);
    expect(await transitionJob(ds, job.id, JobStatus.Starting, { runnerId: 'r2' })).toBe(false);
    expect(await transitionJob(ds, job.id, JobStatus.Running)).toBe(true);
    expect(await transitionJob(ds, job.id, JobStatus.Failed, { exitCode: 3 })).toBe(true);
    expect(await transitionJob(ds, job.id, JobStatus.Completed)).toBe(false);
    const row = await ds.getRepository(JobEntity).findOneByOrFail({ id: job.id });
    expect(row).toMatchObject({ status: JobStatus.Failed, runnerId: 'r1', exitCode: 3 });
    expect(row.startedAt).toBeInstanceOf(Date);
    expect(row.finishedAt).toBeInstanceOf(Date);
  });

  it('lets exactly one of several runners claim a pending job', async () => {
    for (let i = 0; i < 50; i++) {
      const job = await JobFactory.create(ds);
      const runners = ['r0', 'r1', 'r2', 'r3'];
      const won = await Promise.all(runners.map((r) => transitionJob(ds, job.id, JobStatus.Starting, { runnerId: r })));
      expect(won.filter(Boolean)).toHaveLength(1);
      const row = await ds.getRepository(JobEntity).findOneByOrFail({ id: job.id });
      expect(row.status).toBe(JobStatus.Starting);
      expect(row.runnerId).toBe(runners[won.indexOf(true)]);
    }
  });

  it('lets exactly one of a cancel of a pending job and a claim win a race', async () => {
    const outcomes = { claim: 0, cancel: 0 };
    for (let i = 0; i < 100; i++) {
      const job = await JobFactory.create(ds);
      const claim = () => transitionJob(ds, job.id, JobStatus.Starting, { runnerId: 'r' });
      const cancel = () => transitionJob(ds, job.id, JobStatus.Cancelled);
      // Alternate who is sent first, so both sides of the race are exercised.
      const [claimed, cancelled] =
        i % 2 === 0 ? await Promise.all([claim(), cancel()]) : await Promise.all([cancel(), claim()]).then(([c, k]) => [k, c]);
      const row = await ds.getRepository(JobEntity).findOneByOrFail({ id: job.id });
      // A cancel may follow a claim (starting → cancelled), so it always lands; a claim never follows a cancel.
      expect(cancelled).toBe(true);
      expect(row.status).toBe(JobStatus.Cancelled);
      // The cancel won on the pending job (nobody ever held it) XOR the claim won (and the cancel came after).
      const cancelWonPending = row.runnerId === null && row.startedAt === null;
      expect(claimed !== cancelWonPending).toBe(true);
      if (claimed) expect(row).toMatchObject({ runnerId: 'r', startedAt: expect.any(Date) });
      outcomes[claimed ? 'claim' : 'cancel'] += 1;
    }
    expect(outcomes.claim).toBeGreaterThan(0);
    expect(outcomes.cancel).toBeGreaterThan(0);
  });
});

describe('claimJob and transitionJobWithStats (real Postgres)', () => {
  const stats = (lastSeq: number, over: Partial<LogStats> = {}): LogStats => ({
    bytes: lastSeq * 10, lines: lastSeq, truncated: false, lastSeq, linesLost: false, ...over,
  });

  it('claims a pending job and answers with the row as TypeORM reads it', async () => {
    const job = await JobFactory.create(ds, { env: { A: '1' }, labels: { team: 'x' }, secretNames: ['S'] });
    const claimed = await claimJob(ds, job.id, { runnerId: 'r1', logMode: LogMode.Fast });
    const read = await ds.getRepository(JobEntity).findOneByOrFail({ id: job.id });
    expect(claimed).toBeInstanceOf(JobEntity);
    expect(claimed).toEqual(read);
    expect(claimed).toMatchObject({ status: JobStatus.Starting, runnerId: 'r1', logMode: LogMode.Fast, env: { A: '1' }, logBytes: 0 });
    expect(claimed!.startedAt).toBeInstanceOf(Date);
    // Claimed once only; a missing job is no claim either.
    expect(await claimJob(ds, job.id, { runnerId: 'r2', logMode: LogMode.Durable })).toBeUndefined();
    expect(await claimJob(ds, randomUUID(), { runnerId: 'r2', logMode: LogMode.Durable })).toBeUndefined();
  });

  it('lets exactly one of several runners claim a pending job', async () => {
    for (let i = 0; i < 20; i++) {
      const job = await JobFactory.create(ds);
      const got = await Promise.all(['r0', 'r1', 'r2', 'r3'].map((r) => claimJob(ds, job.id, { runnerId: r, logMode: LogMode.Durable })));
      const winners = got.filter((j) => j !== undefined);
      expect(winners).toHaveLength(1);
      expect((await ds.getRepository(JobEntity).findOneByOrFail({ id: job.id })).runnerId).toBe(winners[0]!.runnerId);
    }
  });

  it('stores a status and its stats together, each half under its own guard', async () => {
    const job = await JobFactory.create(ds, { status: JobStatus.Starting });
    const read = () => ds.getRepository(JobEntity).findOneByOrFail({ id: job.id });

    expect(await transitionJobWithStats(ds, job.id, JobStatus.Running, { runnerId: 'r' }, stats(5))).toBe(true);
    expect(await read()).toMatchObject({ status: JobStatus.Running, runnerId: 'r', logLastSeq: 5, logLines: 5, logBytes: 50 });

    // Stale stats (an older seq) are not written, while the status still moves.
    expect(await transitionJobWithStats(ds, job.id, JobStatus.Completed, { exitCode: 0 }, stats(3, { linesLost: true }))).toBe(true);
    let row = await read();
    expect(row).toMatchObject({ status: JobStatus.Completed, exitCode: 0, logLastSeq: 5, logLines: 5, logBytes: 50 });
    expect(row.finishedAt).toBeInstanceOf(Date);
    // `log_lines_lost` is sticky, whoever sets it.
    expect(row.logLinesLost).toBe(true);

    // A refused move (the job has ended) changes no status column but still records newer stats.
    const finishedAt = row.finishedAt;
    expect(await transitionJobWithStats(ds, job.id, JobStatus.Failed, { exitCode: 9, errorMessage: 'late' }, stats(7, { truncated: true }))).toBe(false);
    row = await read();
    expect(row).toMatchObject({ status: JobStatus.Completed, exitCode: 0, errorMessage: null, logLastSeq: 7, logTruncated: true, logLinesLost: true });
    expect(row.finishedAt).toEqual(finishedAt);

    // Neither half applies: nothing changes.
    const before = await read();
    expect(await transitionJobWithStats(ds, job.id, JobStatus.Failed, {}, stats(2))).toBe(false);
    expect(await read()).toEqual(before);
    expect(await transitionJobWithStats(ds, randomUUID(), JobStatus.Failed, {}, stats(2))).toBe(false);
  });

  it('writes stats that never go backwards', async () => {
    const job = await JobFactory.create(ds, { status: JobStatus.Running });
    await writeLogStats(ds, job.id, stats(4, { linesLost: true }));
    await writeLogStats(ds, job.id, stats(2));
    expect(await ds.getRepository(JobEntity).findOneByOrFail({ id: job.id })).toMatchObject({ logLastSeq: 4, logLines: 4, logLinesLost: true });
  });

  it('writes the stats of several jobs in one statement, each row under the same guard', async () => {
    const jobs = await Promise.all(Array.from({ length: 3 }, () => JobFactory.create(ds, { status: JobStatus.Running })));
    await writeLogStats(ds, jobs[1].id, stats(9, { linesLost: true }));
    await writeManyLogStats(ds, [
      { jobId: jobs[0].id, stats: stats(3, { truncated: true }) },
      // Older than what the row has: left as it is, lost lines still flagged.
      { jobId: jobs[1].id, stats: stats(5) },
      { jobId: jobs[2].id, stats: stats(7, { linesLost: true }) },
      // A job that is gone changes nothing and fails nothing.
      { jobId: randomUUID(), stats: stats(1) },
    ]);
    const rows = await Promise.all(jobs.map((j) => ds.getRepository(JobEntity).findOneByOrFail({ id: j.id })));
    expect(rows.map((r) => [r.logLastSeq, r.logLines, r.logBytes, r.logTruncated, r.logLinesLost])).toEqual([
      [3, 3, 30, true, false],
      [9, 9, 90, false, true],
      [7, 7, 70, false, true],
    ]);
    await writeManyLogStats(ds, []);
  });

  it('two batches over the same jobs in opposite orders, many times at once: no deadlock, the newest stats win', async () => {
    const jobs = await Promise.all(Array.from({ length: 8 }, () => JobFactory.create(ds, { status: JobStatus.Running })));
    const batch = (seq: number, order: typeof jobs) => writeManyLogStats(ds, order.map((j) => ({ jobId: j.id, stats: stats(seq) })));
    const reversed = [...jobs].reverse();
    await Promise.all(Array.from({ length: 40 }, (_, i) => batch(i + 1, i % 2 ? jobs : reversed)));
    const rows = await Promise.all(jobs.map((j) => ds.getRepository(JobEntity).findOneByOrFail({ id: j.id })));
    expect(rows.map((r) => r.logLastSeq)).toEqual(jobs.map(() => 40));
  });
});
