import { JobStatus, LogKeep, LogStream, redisKeys } from '@flashpods/contracts';
import { decodeLines, storedLineBytes, streamEntryFields } from '@flashpods/log-format';
import Redis from 'ioredis';
import { randomBytes, randomUUID } from 'node:crypto';
import { JobLogPublisher, parseProgress, PublisherSettings } from './job-log.publisher';
import { FencedError, takeJobStream } from './stream-fence';

describe('JobLogPublisher (real Redis)', () => {
  const redis = new Redis(process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: null });
  const prefix = `fpt_pub_${randomBytes(4).toString('hex')}`;
  const keys = redisKeys(prefix);
  afterAll(async () => {
    const found = await redis.keys(`${prefix}:*`);
    if (found.length) await redis.del(...found);
    redis.disconnect();
  });

  const settings = (over: Partial<PublisherSettings> = {}): PublisherSettings => ({
    logMaxBytes: 10 * 1024 * 1024,
    chunkMaxBytes: 1024,
    chunkMaxDelayMs: 60000,
    maxUnpersistedEntries: 100000,
    ...over,
  });

  async function publisherFor(jobId: string, over: Partial<PublisherSettings> = {}, holder = 'runner-a') {
    const token = await takeJobStream(redis, keys, jobId, holder);
    return new JobLogPublisher(redis, { keys, jobId, token }, settings(over));
  }

  async function onStream(jobId: string) {
    const entries = await redis.xrangeBuffer(keys.jobLog(jobId), '-', '+');
    return entries.flatMap(([, fields]) => {
      const m = streamEntryFields(fields);
      return m.get('t')?.toString() === 'lines' ? decodeLines(m.get('d')!, Number(m.get('s'))) : [];
    });
  }

  it('records progress that matches exactly what is on the stream, after every chunk', async () => {
    const jobId = randomUUID();
    const pub = await publisherFor(jobId);
    let checks = 0;
    let queuedBytes = 0;
    const bytesAfter = new Map<number, number>();
    for (let i = 1; i <= 600; i++) {
      const stream = i % 3 === 0 ? LogStream.Stderr : LogStream.Stdout;
      const text = Buffer.from(`${i} ${'x'.repeat(i % 7 === 0 ? 3000 : i % 50)}`);
      queuedBytes += storedLineBytes(text.length);
      bytesAfter.set(i, queuedBytes);
      const wait = pub.line(stream, text, 1700000000000 + i);
      if (wait) {
        // The chunk before the one just handed off is acknowledged: the stream and the progress
        // record must describe exactly the same lines, bytes included (a resumed runner caps from there).
        await wait;
        const lines = await onStream(jobId);
        const p = parseProgress(await redis.hgetall(keys.jobProgress(jobId)));
        const last = lines[lines.length - 1].seq;
        expect(p).toEqual({
          seq: last,
          stdout: lines.filter((l) => l.stream === LogStream.Stdout).length,
          stderr: lines.filter((l) => l.stream === LogStream.Stderr).length,
          bytes: bytesAfter.get(last),
          truncated: false,
          ts: lines[lines.length - 1].ts,
        });
        expect(pub.shipped.seq).toBeGreaterThanOrEqual(last);
        checks++;
      }
    }
    await pub.flush();
    const lines = await onStream(jobId);
    expect(lines.map((l) => l.seq)).toEqual(Array.from({ length: 600 }, (_, i) => i + 1));
    expect(lines.map((l) => l.text.toString().split(' ')[0])).toEqual(Array.from({ length: 600 }, (_, i) => String(i + 1)));
    expect(parseProgress(await redis.hgetall(keys.jobProgress(jobId)))).toEqual({ seq: 600, stdout: 400, stderr: 200, bytes: queuedBytes, truncated: false, ts: 1700000000600 });
    expect(checks).toBeGreaterThan(20);
  });

  it('ships a line given as a range of a larger buffer as exactly those bytes, and counts only them against the cap', async () => {
    const jobId = randomUUID();
    const pub = await publisherFor(jobId, { logMaxBytes: 3 * storedLineBytes(5) });
    const read = Buffer.from('xxalpha\nbravo\ncharlie\ndelta\n');
    // As the runner's framer hands lines on: ranges of the transport's buffer, not copies.
    let start = 2;
    for (let nl = read.indexOf(0x0a, start); nl !== -1; start = nl + 1, nl = read.indexOf(0x0a, start)) {
      pub.line(LogStream.Stdout, read, 1700000000000, start, nl);
    }
    read.fill(0x3f); // the publisher copied the bytes at once: changing the buffer changes nothing shipped
    await pub.flush();
    const lines = await onStream(jobId);
    // alpha + bravo fit (2 × 21 bytes of a cap of 63), charlie (23) would pass it: the marker.
    expect(lines.map((l) => l.text.toString())).toEqual(['alpha', 'bravo', `[TRUNCATED - log exceeded ${3 * storedLineBytes(5)} bytes limit]`]);
    expect(parseProgress(await redis.hgetall(keys.jobProgress(jobId)))).toMatchObject({ seq: 3, stdout: 4, bytes: 2 * storedLineBytes(5) + storedLineBytes(7), truncated: true });
  });

  it('refuses a range outside the buffer it names before counting anything, at each edge', async () => {
    const jobId = randomUUID();
    const pub = await publisherFor(jobId);
    const text = Buffer.from('abcd');
    expect(() => pub.line(LogStream.Stdout, text, 1700000000000, 0, 5)).toThrow(RangeError); // one past the end
    expect(() => pub.line(LogStream.Stdout, text, 1700000000000, 3, 2)).toThrow(RangeError); // start after end
    expect(() => pub.line(LogStream.Stdout, text, 1700000000000, -1, 2)).toThrow(RangeError);
    pub.line(LogStream.Stdout, text, 1700000000000, 0, 4); // the whole buffer: the edge that is allowed
    pub.line(LogStream.Stdout, text, 1700000000000, 4, 4); // an empty line at its end
    await pub.flush();
    expect((await onStream(jobId)).map((l) => [l.seq, l.text.toString()])).toEqual([[1, 'abcd'], [2, '']]);
    expect(parseProgress(await redis.hgetall(keys.jobProgress(jobId)))).toMatchObject({ seq: 2, stdout: 2 });
  });

  it('applies the cap at the source: the marker replaces the line that would pass it, later lines are dropped', async () => {
    const jobId = randomUUID();
    const pub = await publisherFor(jobId, { logMaxBytes: 1024, chunkMaxBytes: 4096 });
    for (let i = 1; i <= 100; i++) pub.line(LogStream.Stdout, Buffer.from(`line ${String(i).padStart(3, '0')}`), 1700000000000);
    await pub.flush();
    const lines = await onStream(jobId);
    const last = lines[lines.length - 1];
    expect(last.stream).toBe(LogStream.System);
    expect(last.text.toString()).toBe('[TRUNCATED - log exceeded 1024 bytes limit]');
    // Lines of 8 bytes are stored as 24: 42 fit in 1024 (1008 bytes), the 43rd would pass.
    expect(lines.length).toBe(43);
    expect(lines.slice(0, -1).reduce((n, l) => n + storedLineBytes(l.text.length), 0)).toBe(42 * 24);
    expect(pub.isTruncated).toBe(true);
    expect(parseProgress(await redis.hgetall(keys.jobProgress(jobId)))).toMatchObject({ truncated: true, seq: 43, stdout: 100 });
  });

  it('head_tail: ships every line past the cap (the persister decides what is kept); a resumed publisher carries on the same way', async () => {
    const jobId = randomUUID();
    const pub = await publisherFor(jobId, { logMaxBytes: 1024, chunkMaxBytes: 4096, logKeep: LogKeep.HeadTail });
    for (let i = 1; i <= 100; i++) pub.line(LogStream.Stdout, Buffer.from(`line ${String(i).padStart(3, '0')}`), 1700000000000);
    await pub.flush();
    expect(pub.isTruncated).toBe(false);
    expect(parseProgress(await redis.hgetall(keys.jobProgress(jobId)))).toEqual({ seq: 100, stdout: 100, stderr: 0, bytes: 2400, truncated: false, ts: 1700000000000 });
    // A runner re-attaching after a restart continues from the recorded progress, still past the cap.
    const token = await takeJobStream(redis, keys, jobId, 'runner-a');
    const resumed = new JobLogPublisher(redis, { keys, jobId, token }, settings({ logMaxBytes: 1024, chunkMaxBytes: 4096, logKeep: LogKeep.HeadTail }), parseProgress(await redis.hgetall(keys.jobProgress(jobId))));
    await resumed.system('re-attached');
    resumed.line(LogStream.Stderr, Buffer.from('after the restart'), 1700000000001);
    await resumed.flush();
    const lines = await onStream(jobId);
    expect(lines.map((l) => [l.seq, l.text.toString()])).toEqual([
      ...Array.from({ length: 100 }, (_, i) => [i + 1, `line ${String(i + 1).padStart(3, '0')}`]),
      [101, 're-attached'],
      [102, 'after the restart'],
    ]);
    expect(parseProgress(await redis.hgetall(keys.jobProgress(jobId)))).toEqual({
      seq: 102, stdout: 100, stderr: 1, bytes: 2400 + storedLineBytes(11) + storedLineBytes(17), truncated: false, ts: 1700000000001,
    });
  });

  it('backpressure: with a stream nobody trims, the writer is made to wait and the stream stops at the limit', async () => {
    const jobId = randomUUID();
    const pub = await publisherFor(jobId, { chunkMaxBytes: 4096, maxUnpersistedEntries: 8, logMaxBytes: 1 << 30 });
    const text = Buffer.from('x'.repeat(70));
    let waits = 0;
    let produced = 0;
    // A reader that honours the promises, as the executors do; it must be held back.
    const reader = (async () => {
      for (; produced < 200000; produced++) {
        const w = pub.line(LogStream.Stdout, text, Date.now());
        if (w) {
          waits++;
          await w;
        }
      }
    })();
    await new Promise((r) => setTimeout(r, 1500));
    const len = await redis.xlen(keys.jobLog(jobId));
    // Nobody trims: the stream holds the limit (plus the chunk that found it full) and the reader is stuck far from the end.
    expect(len).toBeGreaterThanOrEqual(8);
    expect(len).toBeLessThanOrEqual(8 + 1);
    expect(produced).toBeLessThan(200000);
    expect(produced).toBeLessThan((len + 3) * Math.ceil(4096 / (70 + 13)));
    expect(waits).toBeGreaterThan(0);
    expect(pub.backpressureWaits).toBeGreaterThan(0);
    // The persister catches up (trims everything): the reader goes on to the end.
    const trimmer = setInterval(() => void redis.xtrim(keys.jobLog(jobId), 'MAXLEN', 0), 5);
    try {
      await reader;
      await pub.flush();
    } finally {
      clearInterval(trimmer);
    }
    expect(produced).toBe(200000);
    expect(parseProgress(await redis.hgetall(keys.jobProgress(jobId)))).toMatchObject({ seq: 200000, stdout: 200000, truncated: false });
  }, 60000);

  it('backpressure at a slow rate: with the stream over its bound, the timer takes no more chunks, line() makes the writer wait, and the waiting lines all ship once, in order', async () => {
    const jobId = randomUUID();
    // Defaults of the runner (64 KiB chunks, 20 ms), and a stream already past its bound that
    // nobody trims: the persister is behind.
    const pub = await publisherFor(jobId, { chunkMaxBytes: 64 * 1024, chunkMaxDelayMs: 20, maxUnpersistedEntries: 8, logMaxBytes: 1 << 30 });
    const filler: string[] = [];
    for (let i = 0; i < 10; i++) filler.push((await redis.xadd(keys.jobLog(jobId), '*', 'filler', String(i)))!);
    let shipped = 0;
    pub.settings.observer = { chunkShipped: () => void shipped++, backpressureWait: () => undefined, streamFullWait: () => undefined };
    const text = (i: number) => Buffer.from(`${String(i).padStart(6, '0')} ${'x'.repeat(793)}`);
    let produced = 0;
    let waits = 0;
    let mostOnTheirWay = 0;
    // About 80 KB/s (800 bytes every 10 ms) for 2 s, honouring the waits as the executors do:
    // less than a chunk per chunkMaxDelayMs, so only the timer takes chunks.
    const until = performance.now() + 2000;
    const writer = (async () => {
      while (performance.now() < until) {
        const w = pub.line(LogStream.Stdout, text(++produced), 1700000000000 + produced);
        mostOnTheirWay = Math.max(mostOnTheirWay, pub.chunksOnTheirWay);
        if (w) {
          waits++;
          await w;
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    await new Promise((r) => setTimeout(r, 2100));
    // The first chunk went at once and found the stream full; nothing after it is settled.
    expect(shipped).toBe(1);
    expect(waits).toBeGreaterThan(0);
    expect(mostOnTheirWay).toBeLessThanOrEqual(2);
    expect(pub.chunksOnTheirWay).toBeLessThanOrEqual(2);
    // 2 s at this rate would be ~200 lines; two chunks of 64 KiB hold ~80 each.
    expect(produced).toBeLessThan(170);
    const lines = produced;
    // The persister catches up: the stream's old entries are trimmed, and every waiting line ships.
    await redis.xdel(keys.jobLog(jobId), ...filler);
    await writer;
    await pub.flush();
    // Taken while the stream was full and shipped now: never more than the bound (plus what the
    // writer added after its wait, before it saw its time was up).
    expect(shipped - 1).toBeLessThanOrEqual(3);
    const got = await onStream(jobId);
    expect(got.map((l) => l.seq)).toEqual(Array.from({ length: produced }, (_, i) => i + 1));
    expect(got.map((l) => l.text.toString())).toEqual(Array.from({ length: produced }, (_, i) => text(i + 1).toString()));
    expect(produced - lines).toBeLessThanOrEqual(1);
    expect(parseProgress(await redis.hgetall(keys.jobProgress(jobId)))).toMatchObject({ seq: produced, stdout: produced });
  }, 20000);

  it('fencing: once another writer takes the stream, the old holder is refused and nothing of it lands', async () => {
    const jobId = randomUUID();
    const old = await publisherFor(jobId, {}, 'runner-a');
    old.line(LogStream.Stdout, Buffer.from('before'), 1);
    await old.flush();
    const token = await takeJobStream(redis, keys, jobId, 'janitor');
    expect(token).toBe('2:janitor');
    old.line(LogStream.Stdout, Buffer.from('after takeover'), 2);
    await expect(old.flush()).rejects.toBeInstanceOf(FencedError);
    await expect(old.status({ status: JobStatus.Completed, at: 3, runnerId: 'runner-a', exitCode: 0 })).rejects.toBeInstanceOf(FencedError);
    expect(() => old.line(LogStream.Stdout, Buffer.from('more'), 4)).toThrow(FencedError);
    const fresh = new JobLogPublisher(redis, { keys, jobId, token }, settings(), old.shipped);
    await fresh.system('ended by the janitor');
    await fresh.status({ status: JobStatus.Failed, at: 5, runnerId: 'runner-a', exitCode: null });
    expect((await onStream(jobId)).map((l) => [l.seq, l.text.toString()])).toEqual([
      [1, 'before'],
      [2, 'ended by the janitor'],
    ]);
    const entries = await redis.xrange(keys.jobLog(jobId), '-', '+');
    expect(entries.filter(([, f]) => f[1] === 'status')).toHaveLength(1);
    // A terminal event ends the progress record and keeps the fence for a while.
    expect(await redis.exists(keys.jobProgress(jobId))).toBe(0);
    expect(await redis.ttl(keys.jobStreamOwner(jobId))).toBeGreaterThan(0);
  });

  it('latency: a line after a quiet spell goes at once; lines close behind it wait, one chunk per chunkMaxDelayMs', async () => {
    const jobId = randomUUID();
    const pub = await publisherFor(jobId, { chunkMaxBytes: 64 * 1024, chunkMaxDelayMs: 1500 });
    const entries = () => redis.xlen(keys.jobLog(jobId));
    const until = async (n: number, withinMs: number) => {
      const t0 = performance.now();
      while ((await entries()) < n) {
        if (performance.now() - t0 > withinMs) throw new Error(`stream still below ${n} entries after ${withinMs} ms`);
        await new Promise((r) => setTimeout(r, 5));
      }
      return performance.now() - t0;
    };
    // Two lines read together (one turn of the event loop): one chunk, sent without waiting the delay.
    pub.line(LogStream.Stdout, Buffer.from('first'), 1700000000000);
    pub.line(LogStream.Stdout, Buffer.from('second'), 1700000000001);
    await until(1, 500);
    const sentAt = performance.now();
    pub.line(LogStream.Stdout, Buffer.from('third'), 1700000000002);
    await new Promise((r) => setTimeout(r, 500));
    expect(await entries()).toBe(1);
    await until(2, 3000);
    expect(performance.now() - sentAt).toBeGreaterThanOrEqual(1400);
    // Quiet for longer than the delay: the next line goes at once again.
    await new Promise((r) => setTimeout(r, 1600));
    pub.line(LogStream.Stdout, Buffer.from('fourth'), 1700000000003);
    await until(3, 500);
    expect((await onStream(jobId)).map((l) => l.text.toString())).toEqual(['first', 'second', 'third', 'fourth']);
  });

  it('gap: the chunk holding the gap line, and only it, is flagged; the progress records when output was last read', async () => {
    const jobId = randomUUID();
    const pub = await publisherFor(jobId);
    pub.line(LogStream.Stdout, Buffer.from('line 1'), 1700000000001);
    await pub.flush();
    expect(parseProgress(await redis.hgetall(keys.jobProgress(jobId)))).toMatchObject({ seq: 1, ts: 1700000000001 });
    const token = await takeJobStream(redis, keys, jobId, 'runner-a');
    const resumed = new JobLogPublisher(redis, { keys, jobId, token }, settings(), parseProgress(await redis.hgetall(keys.jobProgress(jobId))));
    await resumed.system('re-attached');
    await resumed.gap('output was not captured', 1700000000005);
    resumed.line(LogStream.Stdout, Buffer.from('line 9'), 1700000000009);
    await resumed.flush();
    const entries = await redis.xrangeBuffer(keys.jobLog(jobId), '-', '+');
    const flagged = entries.map(([, f]) => streamEntryFields(f)).map((m) => [Number(m.get('s')), m.get('g')?.toString() ?? null]);
    expect(flagged).toEqual([[1, null], [2, null], [3, '1'], [4, null]]);
    expect((await onStream(jobId)).map((l) => [l.seq, l.stream, l.text.toString()])).toEqual([
      [1, LogStream.Stdout, 'line 1'],
      [2, LogStream.System, 're-attached'],
      [3, LogStream.System, 'output was not captured'],
      [4, LogStream.Stdout, 'line 9'],
    ]);
    // System lines are not output: the time recorded is that of the last line the workload wrote.
    expect(parseProgress(await redis.hgetall(keys.jobProgress(jobId)))).toMatchObject({ seq: 4, ts: 1700000000009 });
  });

  it('gap past the cap of a head log: line and flag are both dropped', async () => {
    const jobId = randomUUID();
    const pub = await publisherFor(jobId, { logMaxBytes: 1024, chunkMaxBytes: 4096 });
    for (let i = 1; i <= 100; i++) pub.line(LogStream.Stdout, Buffer.from(`line ${String(i).padStart(3, '0')}`), 1700000000000);
    await pub.gap('output was not captured');
    const entries = await redis.xrangeBuffer(keys.jobLog(jobId), '-', '+');
    expect(entries.some(([, f]) => streamEntryFields(f).has('g'))).toBe(false);
    expect((await onStream(jobId)).some((l) => l.text.toString() === 'output was not captured')).toBe(false);
  });

  /** Each lines entry of the job's stream: whether it is flagged as holding a gap line, and its lines' texts. */
  async function entriesOf(jobId: string) {
    const entries = await redis.xrangeBuffer(keys.jobLog(jobId), '-', '+');
    return entries
      .map(([, f]) => streamEntryFields(f))
      .filter((m) => m.get('t')?.toString() === 'lines')
      .map((m) => ({ flagged: m.has('g'), texts: decodeLines(m.get('d')!, Number(m.get('s'))).map((l) => l.text.toString()) }));
  }

  it('gap: a gap line that fills the chunk it would join still ships flagged, and no later chunk is', async () => {
    const jobId = randomUUID();
    const pub = await publisherFor(jobId);
    // Nine lines of 89 bytes take 918 of the chunk's 1024: the gap line fits, and fills it.
    for (let i = 1; i <= 9; i++) pub.line(LogStream.Stdout, Buffer.from(`${i}`.padEnd(89, '.')), 1700000000000 + i);
    await pub.gap('output was not captured', 1700000000010);
    pub.line(LogStream.Stdout, Buffer.from('after the gap'), 1700000000011);
    await pub.flush();
    const entries = await entriesOf(jobId);
    expect(entries.flatMap((e) => e.texts)).toEqual([...Array.from({ length: 9 }, (_, i) => `${i + 1}`.padEnd(89, '.')), 'output was not captured', 'after the gap']);
    // The flag is on the entry holding the gap line, and on no other.
    expect(entries.filter((e) => e.flagged).map((e) => e.texts)).toEqual([['output was not captured']]);
  });

  it('gap that is the line reaching the cap of a head log: the marker takes its place, and no flag is set', async () => {
    const jobId = randomUUID();
    // Ten lines of 8 bytes are stored as 240; the gap line (39 stored) would pass 260.
    const pub = await publisherFor(jobId, { logMaxBytes: 260, chunkMaxBytes: 4096 });
    for (let i = 1; i <= 10; i++) pub.line(LogStream.Stdout, Buffer.from(`line ${String(i).padStart(3, '0')}`), 1700000000000);
    await pub.gap('output was not captured');
    const entries = await entriesOf(jobId);
    const texts = entries.flatMap((e) => e.texts);
    expect(texts.slice(0, 10)).toEqual(Array.from({ length: 10 }, (_, i) => `line ${String(i + 1).padStart(3, '0')}`));
    expect(texts.slice(10)).toEqual(['[TRUNCATED - log exceeded 260 bytes limit]']);
    expect(entries.some((e) => e.flagged)).toBe(false);
    expect(pub.isTruncated).toBe(true);
  });
});
