import { Logger } from '@nestjs/common';
import { createRedis, FlashpodsConfig, loadConfig } from '@flashpods/config';
import { JobStatus, LINES_FIELDS, LogStream, redisKeys, RedisKeys, STATUS_FIELDS, StreamEntryType } from '@flashpods/contracts';
import { createDataSource, JobEntity, migrate } from '@flashpods/database';
import { encodeLines } from '@flashpods/log-format';
import Redis from 'ioredis';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { JobFactory } from '../../../test/support/job.factory';
import { createTestWorld, TestWorld, waitFor } from '../../../test/support/test-env';
import { JobLogConsumer } from './job-log.consumer';
import { Lease } from './persister-lease';

/** What the test reaches inside a consumer: its lease trims (where it is made to die) and the fields a kill stops. */
interface ConsumerInsides {
  leases: { trim(lease: Lease, minId: string): Promise<boolean> };
  stopping: boolean;
  groupReader: Redis;
  streamReader: Redis;
}

describe('JobLogConsumer (real Redis, real Postgres, real files)', () => {
  let world: TestWorld;
  let config: FlashpodsConfig;
  let keys: RedisKeys;
  let redis: Redis;
  let ds: DataSource;

  beforeAll(async () => {
    Logger.overrideLogger(['error']);
    // Leases of 1 s: a dead persister's job is claimed by another about a second later.
    world = await createTestWorld({ PERSISTER_CLAIM_IDLE_MS: '1000' });
    config = loadConfig(world.env);
    keys = redisKeys(config.redis.prefix);
    ds = await createDataSource(world.databaseUrl).initialize();
    await migrate(ds);
    redis = new Redis(world.env.REDIS_URL);
  });
  afterAll(async () => {
    const left = await redis.keys(`${world.redisPrefix}:*`);
    if (left.length) await redis.del(...left);
    redis.disconnect();
    await ds.destroy();
    await world.dispose();
  });

  /** A persister as the service builds it (its own Redis and Postgres connections, so it can die alone). */
  async function persister(): Promise<{ consumer: JobLogConsumer; redis: Redis; ds: DataSource }> {
    const own = { redis: createRedis(config, 'int-spec') as Redis, ds: await createDataSource(world.databaseUrl).initialize() };
    const consumer = new JobLogConsumer(config, own.redis, keys, own.ds);
    await consumer.onApplicationBootstrap();
    return { consumer, ...own };
  }

  /** An XADD of a lines entry (one line) as the runner's publisher writes it, with the id given. */
  const lines = (m: ReturnType<Redis['multi']>, jobId: string, id: string, seq: number, text: string, gap = false) =>
    m.xadd(
      keys.jobLog(jobId), id,
      LINES_FIELDS.type, StreamEntryType.Lines, LINES_FIELDS.firstSeq, String(seq), LINES_FIELDS.count, '1',
      LINES_FIELDS.data, encodeLines([{ seq, ts: 1700000000000 + seq, stream: seq === 2 ? LogStream.System : LogStream.Stdout, text: Buffer.from(text) }]),
      ...(gap ? [LINES_FIELDS.gap, '1'] : []),
    );
  const exec = async (m: ReturnType<Redis['multi']>) => {
    for (const [err] of (await m.exec()) ?? []) if (err) throw err;
  };

  it('jobs printing a line at a time have their log stats written at most every 250 ms, not once per line, and exact once quiet', async () => {
    // Counts every statement that writes a job's log stats, whatever the connection.
    await ds.query(`CREATE TABLE stats_writes (n int NOT NULL)`);
    await ds.query(`INSERT INTO stats_writes VALUES (0)`);
    await ds.query(`CREATE FUNCTION count_stats_write() RETURNS trigger AS $$ BEGIN UPDATE stats_writes SET n = n + 1; RETURN NULL; END $$ LANGUAGE plpgsql`);
    await ds.query(`CREATE TRIGGER count_stats_writes AFTER UPDATE OF log_bytes ON jobs FOR EACH ROW EXECUTE FUNCTION count_stats_write()`);
    // Two jobs, their lines taking turns: a round that brings one job's line finds the other's
    // stats out of date (it printed a line before). Those were written at once, every time.
    const jobs = [
      await JobFactory.create(ds, { status: JobStatus.Running, startedAt: new Date() }),
      await JobFactory.create(ds, { status: JobStatus.Running, startedAt: new Date() }),
    ];
    const p = await persister();
    try {
      for (const job of jobs) await redis.xadd(keys.activeJobs, '*', 'job', job.id);
      await waitFor('the persister to take both jobs', async () => (jobs.every((j) => p.consumer.ownedJobIds.includes(j.id)) ? true : undefined), 10000, 10);
      const t = Date.now();
      // 25 lines each, one entry per line, a line every 10 ms: half a second, two stats intervals.
      for (let seq = 1; seq <= 25; seq++) {
        for (const job of jobs) {
          await exec(lines(redis.multi(), job.id, `${t}-${seq}`, seq, `line ${seq}`));
          await new Promise((r) => setTimeout(r, 10));
        }
      }
      for (const job of jobs) {
        const row = await waitFor('the stats of the last line', async () => {
          const r = await ds.getRepository(JobEntity).findOneByOrFail({ id: job.id });
          return r.logLastSeq === 25 ? r : undefined;
        });
        expect(row.logLines).toBe(25);
      }
      const span = Date.now() - t;
      const [{ n }] = await ds.query(`SELECT n FROM stats_writes`);
      // At most one per job per 250 ms of the time the lines took to arrive and be stored (half a
      // second on a quiet machine, more on a loaded one), plus the first: written whenever out of
      // date, it was one per line or more (51).
      expect(n).toBeGreaterThanOrEqual(4);
      expect(n).toBeLessThanOrEqual(jobs.length * (Math.ceil(span / 250) + 1));
      expect(n).toBeLessThan(jobs.length * 25);
    } finally {
      await p.consumer.onApplicationShutdown();
      p.redis.disconnect();
      await p.ds.destroy();
      await ds.query(`DROP TRIGGER count_stats_writes ON jobs`);
      await ds.query(`DROP FUNCTION count_stats_write()`);
      await ds.query(`DROP TABLE stats_writes`);
    }
  }, 30000);

  it('log_lines_lost survives a persister killed right after trimming the flagged entry, before its stats were due', async () => {
    const job = await JobFactory.create(ds, { status: JobStatus.Running, startedAt: new Date() });
    const gapLine = 'fast mode: output written while no runner was attached was not captured';
    const a = await persister();
    const insides = a.consumer as unknown as ConsumerInsides;
    const t = Date.now();
    const [first, flagged, third] = [`${t}-1`, `${t}-2`, `${t}-3`];
    // Persister A dies (as a SIGKILL would leave it: nothing more written, no shutdown path) the
    // moment its trim past the flagged entry is done; the trim before is reported.
    let firstTrim!: () => void;
    const firstTrimmed = new Promise<void>((r) => (firstTrim = r));
    let died!: () => void;
    const dead = new Promise<void>((r) => (died = r));
    const trim = insides.leases.trim.bind(insides.leases);
    insides.leases.trim = async (lease, minId) => {
      const ok = await trim(lease, minId);
      if (minId !== third) {
        firstTrim();
        return ok;
      }
      insides.stopping = true;
      insides.groupReader.disconnect();
      insides.streamReader.disconnect();
      a.redis.disconnect();
      await a.ds.destroy();
      died();
      return new Promise<boolean>(() => undefined);
    };

    await redis.xadd(keys.activeJobs, '*', 'job', job.id);
    await exec(lines(redis.multi(), job.id, first, 1, 'line 1'));
    await waitFor('persister A to take the job', async () => (a.consumer.ownedJobIds.includes(job.id) ? true : undefined), 10000, 10);
    await firstTrimmed;
    // A wrote its stats with line 1, just now: the next are not due for 250 ms. The gap entry and
    // the line after it come together, so A reads them in one round and trims the gap entry away.
    const m = redis.multi();
    lines(m, job.id, flagged, 2, gapLine, true);
    lines(m, job.id, third, 3, 'line 3');
    await exec(m);
    await dead;
    const onStream = await redis.xrange(keys.jobLog(job.id), '-', '+');
    expect(onStream.map(([id]) => id)).toEqual([third]);

    // Persister B takes the job once A's lease has expired, and stores its end.
    const b = await persister();
    try {
      await waitFor('persister B to take the job', async () => (b.consumer.ownedJobIds.includes(job.id) ? true : undefined), 15000, 50);
      await redis.xadd(
        keys.jobLog(job.id), '*', STATUS_FIELDS.type, StreamEntryType.Status,
        STATUS_FIELDS.event, JSON.stringify({ status: JobStatus.Completed, at: Date.now(), runnerId: 'runner-a', exitCode: 0 }),
      );
      const row = await waitFor('the job to be completed', async () => {
        const r = await ds.getRepository(JobEntity).findOneByOrFail({ id: job.id });
        return r.status === JobStatus.Completed ? r : undefined;
      });
      const log = (await readFile(join(world.logDir, `${job.id}.log`), 'utf8')).split('\n').filter(Boolean);
      expect(log.map((l) => l.slice(15))).toEqual(['line 1', gapLine, 'line 3']);
      expect({ lines: row.logLines, lastSeq: row.logLastSeq, linesLost: row.logLinesLost }).toEqual({ lines: 3, lastSeq: 3, linesLost: true });
    } finally {
      await b.consumer.onApplicationShutdown();
      b.redis.disconnect();
      await b.ds.destroy();
    }
  }, 30000);
});
