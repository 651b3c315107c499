import Redis from 'ioredis';
import { failLateCommands } from './fail-fast-redis';

const url = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const busyFor = (ms: number) => {
  const until = performance.now() + ms;
  while (performance.now() < until);
};

describe('failLateCommands (the API requests\' Redis timeout)', () => {
  let redis: Redis;
  let admin: Redis;
  beforeEach(() => {
    redis = failLateCommands(new Redis(url, { enableOfflineQueue: true, maxRetriesPerRequest: 1 }), 300) as Redis;
    admin = new Redis(url);
  });
  afterEach(async () => {
    await admin.client('UNPAUSE').catch(() => undefined);
    redis.disconnect();
    admin.disconnect();
  });

  it('a reply that came back while the event loop was busy longer than the timeout is taken, not failed', async () => {
    await redis.ping();
    const replies = Array.from({ length: 20 }, (_, i) => redis.echo(`r${i}`));
    busyFor(800); // the replies arrive meanwhile; the timers are due before the socket is read
    await expect(Promise.all(replies)).resolves.toEqual(Array.from({ length: 20 }, (_, i) => `r${i}`));
  });

  it('the same busy loop with ioredis\' own commandTimeout fails them (what this replaces)', async () => {
    const plain = new Redis(url, { commandTimeout: 300, maxRetriesPerRequest: 1 });
    try {
      await plain.ping();
      const reply = plain.echo('late');
      busyFor(800);
      await expect(reply).rejects.toThrow('Command timed out');
    } finally {
      plain.disconnect();
    }
  });

  it('a Redis that does not answer fails the command after about the timeout', async () => {
    await redis.ping();
    await admin.client('PAUSE', 2000, 'ALL');
    const t0 = performance.now();
    await expect(redis.get('fp-any-key')).rejects.toThrow('Command timed out');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(290);
    expect(performance.now() - t0).toBeLessThan(1500);
  });
});
