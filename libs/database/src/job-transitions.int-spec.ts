import { JobStatus } from '@flashpods/contracts';
import { DataSource } from 'typeorm';
import { JobFactory } from '../../../test/support/job.factory';
import { createTestWorld, TestWorld } from '../../../test/support/test-env';
import { createDataSource, migrate } from './data-source.factory';
import { JobEntity } from './job.entity';
import { transitionJob } from './job-transitions';

describe('transitionJob (real Postgres)', () => {
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

  it('runs migrations once when several services start at the same moment', async () => {
    const others = await Promise.all([1, 2, 3].map(() => createDataSource(world.databaseUrl, 1).initialize()));
    const applied = await Promise.all(others.map((o) => migrate(o)));
    await Promise.all(others.map((o) => o.destroy()));
    expect(applied.flat()).toEqual([]);
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

  it('lets exactly one of a cancel and a claim win a race on a pending job', async () => {
    for (let i = 0; i < 20; i++) {
      const job = await JobFactory.create(ds);
      const [claimed, cancelled] = await Promise.all([
        transitionJob(ds, job.id, JobStatus.Starting, { runnerId: 'r' }),
        transitionJob(ds, job.id, JobStatus.Cancelled),
      ]);
      // A cancel may also follow a claim (starting → cancelled); a claim never follows a cancel.
      const row = await ds.getRepository(JobEntity).findOneByOrFail({ id: job.id });
      expect(row.status).toBe(cancelled ? JobStatus.Cancelled : JobStatus.Starting);
      expect(claimed || cancelled).toBe(true);
      if (!claimed) expect(row.runnerId).toBeNull();
    }
  });
});
