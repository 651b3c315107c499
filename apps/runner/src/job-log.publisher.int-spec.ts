import { LogStream, redisKeys } from '@flashpods/contracts';
import { decodeLines, streamEntryFields } from '@flashpods/log-format';
import Redis from 'ioredis';
import { randomBytes } from 'node:crypto';
import { JobLogPublisher, parseProgress } from './job-log.publisher';

describe('JobLogPublisher (real Redis)', () => {
  const redis = new Redis(process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: null });
  const keys = redisKeys(`fpt_pub_${randomBytes(4).toString('hex')}`);
  afterAll(async () => {
    const found = await redis.keys(`${keys.activeJobs.split(':')[0]}:*`);
    if (found.length) await redis.del(...found);
    redis.disconnect();
  });

  async function onStream(jobId: string) {
    const entries = await redis.xrangeBuffer(keys.jobLog(jobId), '-', '+');
    return entries.flatMap(([, fields]) => {
      const m = streamEntryFields(fields);
      return m.get('t')?.toString() === 'lines' ? decodeLines(m.get('d')!, Number(m.get('s'))) : [];
    });
  }

  it('records progress that matches exactly what is on the stream, chunk by chunk', async () => {
    const jobId = 'job-progress';
    const pub = new JobLogPublisher(redis, keys.jobLog(jobId), keys.jobProgress(jobId), {
      logMaxBytes: 10 * 1024 * 1024,
      chunkMaxBytes: 1024,
      chunkMaxDelayMs: 60000,
      maxUnpersistedEntries: 100000,
    });
    let checks = 0;
    for (let i = 1; i <= 600; i++) {
      const stream = i % 3 === 0 ? LogStream.Stderr : LogStream.Stdout;
      const text = Buffer.from(`${i} ${'x'.repeat(i % 7 === 0 ? 3000 : i % 50)}`);
      const shipped = pub.line(stream, text, 1700000000000 + i);
      if (shipped) {
        await shipped;
        // Whatever chunks were handed off so far are on the stream; the progress says exactly that much.
        await new Promise((r) => setTimeout(r, 5));
        const lines = await onStream(jobId);
        const p = parseProgress(await redis.hgetall(keys.jobProgress(jobId)));
        expect(p.seq).toBe(lines[lines.length - 1].seq);
        expect(p.stdout).toBe(lines.filter((l) => l.stream === LogStream.Stdout).length);
        expect(p.stderr).toBe(lines.filter((l) => l.stream === LogStream.Stderr).length);
        checks++;
      }
    }
    await pub.flush();
    const lines = await onStream(jobId);
    expect(lines.map((l) => l.seq)).toEqual(Array.from({ length: 600 }, (_, i) => i + 1));
    expect(lines.map((l) => l.text.toString().split(' ')[0])).toEqual(Array.from({ length: 600 }, (_, i) => String(i + 1)));
    expect(parseProgress(await redis.hgetall(keys.jobProgress(jobId)))).toEqual({ seq: 600, stdout: 400, stderr: 200, bytes: expect.any(Number), truncated: false });
    expect(checks).toBeGreaterThan(20);
  });

  it('applies the cap at the source: the marker replaces the line that would pass it, later lines are dropped', async () => {
    const jobId = 'job-cap';
    const pub = new JobLogPublisher(redis, keys.jobLog(jobId), keys.jobProgress(jobId), {
      logMaxBytes: 1024,
      chunkMaxBytes: 4096,
      chunkMaxDelayMs: 60000,
      maxUnpersistedEntries: 100000,
    });
    for (let i = 1; i <= 100; i++) pub.line(LogStream.Stdout, Buffer.from(`line ${String(i).padStart(3, '0')}`), 1700000000000);
    await pub.flush();
    const lines = await onStream(jobId);
    const last = lines[lines.length - 1];
    expect(last.stream).toBe(LogStream.System);
    expect(last.text.toString()).toBe('[TRUNCATED - log exceeded 1024 bytes limit]');
    const stored = lines.slice(0, -1).reduce((n, l) => n + 15 + l.text.length + 1, 0);
    expect(stored).toBeLessThanOrEqual(1024);
    expect(stored + 15 + 9).toBeGreaterThan(1024);
    expect(pub.isTruncated).toBe(true);
    expect(parseProgress(await redis.hgetall(keys.jobProgress(jobId)))).toMatchObject({ truncated: true, seq: last.seq });
  });
});
