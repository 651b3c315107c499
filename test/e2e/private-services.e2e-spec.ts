import { readFileSync } from 'node:fs';
import Redis from 'ioredis';
import { DataSource } from 'typeorm';
import { PrivatePostgres, PrivateRedis } from '../support/private-services';

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
const log = (path: string) => readFileSync(path, 'utf8');

/** The harness the restart and chaos tests rely on: `down()` is graceful, `kill()` is kill -9. */
describe('private Redis and Postgres: graceful down() and a real kill()', () => {
  it('Redis: down() shuts down cleanly and keeps the data; kill() gives it no last word', async () => {
    const redis = await PrivateRedis.start();
    try {
      const client = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      await client.connect();
      await client.set('k', 'v');
      client.disconnect();
      await redis.down();
      expect(log(redis.logFile)).toMatch(/ready to exit, bye bye/);
      await redis.up();
      const again = new Redis(redis.url);
      expect(await again.get('k')).toBe('v');
      again.disconnect();
      const before = log(redis.logFile).length;
      const pid = redis.pid!;
      await redis.kill();
      expect(alive(pid)).toBe(false);
      // Killed, not shut down: nothing written after the kill.
      expect(log(redis.logFile).slice(before)).not.toMatch(/shutdown|bye bye/i);
      await redis.up();
      expect(log(redis.logFile).slice(before)).toMatch(/Ready to accept connections/);
    } finally {
      await redis.stop();
    }
  });

  it('Postgres: down() is a clean shutdown; after kill() the next start recovers from a crash', async () => {
    const pg = await PrivatePostgres.start();
    try {
      await pg.down();
      let before = log(pg.logFile).length;
      await pg.up();
      expect(log(pg.logFile).slice(before)).toMatch(/database system was shut down at/);
      const ds = await new DataSource({ type: 'postgres', url: pg.url.replace(/\/flashpods$/, '/postgres') }).initialize();
      const backend: { pid: number }[] = await ds.query('SELECT pg_backend_pid() AS pid');
      const postmaster = pg.pid!;
      await pg.kill();
      expect([alive(postmaster), alive(backend[0].pid)]).toEqual([false, false]);
      await ds.destroy().catch(() => undefined);
      before = log(pg.logFile).length;
      await pg.up();
      expect(log(pg.logFile).slice(before)).toMatch(/database system was interrupted|not properly shut down|automatic recovery in progress/);
    } finally {
      await pg.stop();
    }
  });
});
