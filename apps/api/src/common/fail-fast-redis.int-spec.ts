import Redis from 'ioredis';
import { PrivateRedis } from '../../../../test/support/private-services';
import { failLateCommands } from './fail-fast-redis';

const busyFor = (ms: number) => {
  const until = performance.now() + ms;
  while (performance.now() < until);
};

describe('failLateCommands (the API requests\' Redis timeout)', () => {
  // A Redis of this spec's own: the test of a Redis that does not answer stops it, which on the
  // shared one would stall every spec running alongside.
  let server: PrivateRedis;
  let url: string;
  let redis: Redis;
  beforeAll(async () => {
    server = await PrivateRedis.start();
    url = server.url;
  });
  afterAll(async () => {
    await server?.stop();
  });
  beforeEach(() => {
    redis = failLateCommands(new Redis(url, { enableOfflineQueue: true, maxRetriesPerRequest: 1 }), 300) as Redis;
  });
  afterEach(() => {
    server.thaw();
    redis.disconnect();
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
    server.freeze(); // answers nothing until thawed (after the test), however slow the machine
    const t0 = performance.now();
    await expect(redis.get('fp-any-key')).rejects.toThrow('Command timed out');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(290);
    expect(performance.now() - t0).toBeLessThan(1500);
  });
});
