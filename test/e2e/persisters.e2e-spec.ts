import { redisKeys } from '@flashpods/contracts';
import { INDEX_RECORD_BYTES, indexFileName, logFileName, readIndexRecord } from '@flashpods/log-format';
import Redis from 'ioredis';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gate, release } from '../support/gate';
import { storedNumbers } from '../support/log-audit';
import { Stack } from '../support/stack';
import { TEST_IMAGE, waitFor } from '../support/test-env';

const PREFIX = /^\[\d{2}:\d{2}:\d{2}\.\d{3}\] /;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * `line 1` … `line n`, pausing `pause` seconds every `every` lines so the job runs a while; with
 * `gateAt`, it waits after that line until the test opens its gate (`release`).
 */
const numberedJob = (n: number, every: number, pause: string, gateAt?: number) => [
  'sh',
  '-c',
  `i=1; while [ $i -le ${n} ]; do echo "line $i"; ${gateAt ? `[ $i -eq ${gateAt} ] && ${gate()}; ` : ''}if [ $((i % ${every})) -eq 0 ]; then sleep ${pause}; fi; i=$((i+1)); done`,
];

async function submit(stack: Stack, command: string[]): Promise<string> {
  const { status, body } = await stack.json('POST', '/jobs', { image: TEST_IMAGE, command });
  expect(status).toBe(201);
  return body.id;
}

const jobOf = async (stack: Stack, id: string) => (await stack.json('GET', `/jobs/${id}`)).body;


function expectOneToN(numbers: number[], n: number): void {
  const seen = new Set<number>();
  const dupes = numbers.filter((v) => (seen.has(v) ? true : (seen.add(v), false))).length;
  let missing = 0;
  for (let i = 1; i <= n; i++) if (!seen.has(i)) missing++;
  expect({ count: numbers.length, dupes, missing, ordered: numbers.every((v, i) => i === 0 || v > numbers[i - 1]) }).toEqual({
    count: n,
    dupes: 0,
    missing: 0,
    ordered: true,
  });
}

/**
 * The .idx and .log files agree: record i holds seq i+1, records tile the log from offset 0 to its
 * size, and each points at one whole stored line. Returns the stored lines.
 */
async function expectFilesAgree(logDir: string, id: string): Promise<string[]> {
  const log = await readFile(join(logDir, logFileName(id)));
  const idx = await readFile(join(logDir, indexFileName(id)));
  expect(idx.length % INDEX_RECORD_BYTES).toBe(0);
  const lines: string[] = [];
  let end = 0;
  const bad: string[] = [];
  for (let at = 0; at < idx.length; at += INDEX_RECORD_BYTES) {
    const r = readIndexRecord(idx, at);
    const i = at / INDEX_RECORD_BYTES;
    const text = log.subarray(r.offset, r.offset + r.length).toString();
    if (r.seq !== i + 1 || r.offset !== end || r.offset + r.length > log.length || !PREFIX.test(text) || !text.endsWith('\n') || text.indexOf('\n') !== text.length - 1) {
      bad.push(`record ${i}: seq ${r.seq} at ${r.offset}+${r.length} (expected at ${end}): ${JSON.stringify(text.slice(0, 60))}`);
      if (bad.length > 5) break;
    }
    lines.push(text.slice(0, -1));
    end = r.offset + r.length;
  }
  expect(bad).toEqual([]);
  expect(end).toBe(log.length);
  return lines;
}

/** Pages `/logs?after_seq=` to the end: the seqs it gives. */
async function pagedSeqs(stack: Stack, id: string): Promise<number[]> {
  const seqs: number[] = [];
  for (let after = 0; ; ) {
    const { status, body } = await stack.json('GET', `/jobs/${id}/logs?after_seq=${after}&limit=1000`);
    expect(status).toBe(200);
    if (body.logs.length === 0) return seqs;
    seqs.push(...body.logs.map((l: { seq: number }) => l.seq));
    after = body.next_after_seq;
  }
}

/** Which of the named persisters holds the job's `active` entry, from the consumer group's pending list. */
async function pendingOwners(redis: Redis, stack: Stack, names: string[]): Promise<string[]> {
  const keys = redisKeys(stack.world.redisPrefix);
  const pending = (await redis.xpending(keys.activeJobs, keys.persisterGroup, '-', '+', 100)) as [string, string, number, number][];
  const byPid = new Map(names.map((n) => [stack.pidOf(n), n]));
  return pending.map(([, consumer]) => byPid.get(Number(/-(\d+)(?:-[0-9a-f]+)?$/.exec(consumer)?.[1])) ?? consumer);
}

describe('persisters: one writer per job', () => {
  describe('a persister stalled past the claim time', () => {
    let stack: Stack;
    let redis: Redis;
    beforeAll(async () => {
      stack = await Stack.start(['api', 'runner', 'persister'], { PERSISTER_CLAIM_IDLE_MS: '2000' });
      stack.startService('persister', 'persister-2');
      redis = new Redis(stack.world.env.REDIS_URL);
    }, 60000);
    afterAll(async () => {
      for (const n of ['persister', 'persister-2']) {
        const pid = stack?.pidOf(n);
        if (pid) process.kill(pid, 'SIGCONT');
      }
      redis?.disconnect();
      await stack?.stop();
    });

    it('writes not a byte after it resumes: every line once, in order, and the index agrees with the file', async () => {
      const N = 30000;
      // Its second half waits at a gate, opened once the stalled persister has resumed.
      const id = await submit(stack, numberedJob(N, 500, '0.2', N / 2));
      await waitFor('3,000 lines stored', async () => ((await jobOf(stack, id)).log.lines >= 3000 ? true : undefined), 30000, 50);
      const [owner] = await pendingOwners(redis, stack, ['persister', 'persister-2']);
      expect(['persister', 'persister-2']).toContain(owner);
      const other = owner === 'persister' ? 'persister-2' : 'persister';

      const atStop = await jobOf(stack, id);
      process.kill(stack.pidOf(owner)!, 'SIGSTOP');
      const stoppedAt = Date.now();
      // The other persister claims the job once the entry has been idle for the claim time.
      await waitFor(`${other} to take the job over`, async () => ((await pendingOwners(redis, stack, [owner, other])).includes(other) ? true : undefined), 15000, 100);
      await sleep(Math.max(0, stoppedAt + 3000 - Date.now()));
      const atResume = await jobOf(stack, id);
      process.kill(stack.pidOf(owner)!, 'SIGCONT');
      const stalledMs = Date.now() - stoppedAt;
      await release(id);

      const { job } = await stack.waitTerminal(id, 90000);
      console.log(
        `stall: ${owner} stopped ${stalledMs} ms at ${atStop.log.lines} lines stored; resumed at ${atResume.log.lines} lines, job ${atResume.status}`,
      );
      // The stall proves something only if it outlasted the claim time while the job still ran.
      expect(stalledMs).toBeGreaterThan(2000);
      expect([atStop.status, atResume.status]).toEqual(['running', 'running']);
      expect(atStop.log.lines).toBeLessThan(N);
      expect(atResume.log.lines).toBeLessThan(N);
      expect(job.status).toBe('completed');

      expectOneToN(await storedNumbers(stack, id), N);
      const stored = await expectFilesAgree(stack.world.logDir, id);
      expectOneToN(stored.map((l) => /^line (\d+)$/.exec(l.replace(PREFIX, ''))).filter((m) => m).map((m) => Number(m![1])), N);
      const seqs = await pagedSeqs(stack, id);
      expect(seqs).toEqual(Array.from({ length: stored.length }, (_, i) => i + 1));
      expect(job.log.lines).toBe(stored.length);
      // The resumed persister noticed it had lost the job, and both lived through it.
      expect(stack.logsOf(owner)).toContain(`dropped job ${id}`);
      for (const n of [owner, other]) expect(process.kill(stack.pidOf(n)!, 0)).toBe(true);
    }, 180000);

    it('a second announcement of a running job (a resumed runner) does not give it a second writer', async () => {
      const N = 6000;
      const keys = redisKeys(stack.world.redisPrefix);
      // Its second half waits at a gate, opened once the announcements are made.
      const id = await submit(stack, numberedJob(N, 200, '0.1', N / 2));
      await waitFor('500 lines stored', async () => ((await jobOf(stack, id)).log.lines >= 500 ? true : undefined), 30000, 50);
      // As a runner that restarts and re-attaches does. Blocked group readers are served in turn,
      // so of several announcements at least one reaches the persister that does not own the job.
      for (let i = 0; i < 3; i++) {
        await redis.xadd(keys.activeJobs, '*', 'job', id);
        await sleep(300);
      }
      const atEnd = await jobOf(stack, id);
      await release(id);
      const { job } = await stack.waitTerminal(id, 60000);
      expect(atEnd.status).toBe('running');
      expect(job.status).toBe('completed');
      expectOneToN(await storedNumbers(stack, id), N);
      await expectFilesAgree(stack.world.logDir, id);
      // Every announcement was acknowledged and removed: the duplicates at once, the first at the end.
      await waitFor('the active stream to be empty', async () => ((await redis.xlen(keys.activeJobs)) === 0 ? true : undefined), 10000, 100);
    }, 120000);
  });

  describe('a full disk', () => {
    let stack: Stack;
    let logDir: string;
    beforeAll(async () => {
      logDir = await mkdtemp(join(tmpdir(), 'fp-full-logs-'));
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', logDir]);
      stack = await Stack.start(['api', 'runner', 'persister'], { LOG_DIR: logDir });
    }, 60000);
    afterAll(async () => {
      await stack?.stop();
      execFileSync('umount', ['-l', logDir]);
      await rm(logDir, { recursive: true, force: true });
    });

    it('ends the job failed with log_write_failed, keeps .log and .idx in step, and the next job runs', async () => {
      // ~5.6 MB of output into a 2 MB file system.
      const pad = 'x'.repeat(60);
      const id = await submit(stack, ['sh', '-c', `i=1; while [ $i -le 80000 ]; do echo "line $i ${pad}"; i=$((i+1)); done`]);
      const { job } = await stack.waitTerminal(id, 60000);
      expect(job.status).toBe('failed');
      expect(job.error.code).toBe('log_write_failed');
      expect(job.error.message).toMatch(/ENOSPC/);
      const stored = await expectFilesAgree(logDir, id);
      expect(job.error.message).toContain(`after seq ${stored.length}`);
      expect(stored.length).toBeGreaterThan(1000);
      expect(job.log.lines).toBe(stored.length);
      expect(stack.pidOf('persister') && process.kill(stack.pidOf('persister')!, 0)).toBe(true);

      expect((await stack.request('DELETE', `/jobs/${id}`)).status).toBe(204);
      const next = await submit(stack, ['sh', '-c', 'echo "line 1"; echo "line 2"; echo "line 3"']);
      expect((await stack.waitTerminal(next, 30000)).job.status).toBe('completed');
      expect(await storedNumbers(stack, next, logDir)).toEqual([1, 2, 3]);
      await expectFilesAgree(logDir, next);
    }, 120000);
  });

  describe('a persister stopped with SIGTERM', () => {
    let stack: Stack;
    let redis: Redis;
    beforeAll(async () => {
      stack = await Stack.start(['api', 'runner', 'persister'], { PERSISTER_CLAIM_IDLE_MS: '30000' });
      stack.startService('persister', 'persister-2');
      redis = new Redis(stack.world.env.REDIS_URL);
    }, 60000);
    afterAll(async () => {
      redis?.disconnect();
      await stack?.stop();
    });

    it('hands its job back: the other persister takes it at once, every line once', async () => {
      const N = 4000;
      const id = await submit(stack, numberedJob(N, 100, '0.1'));
      await waitFor('500 lines stored', async () => ((await jobOf(stack, id)).log.lines >= 500 ? true : undefined), 30000, 50);
      const [owner] = await pendingOwners(redis, stack, ['persister', 'persister-2']);
      const other = owner === 'persister' ? 'persister-2' : 'persister';
      await stack.stopService(owner, 'SIGTERM');
      const stoppedAt = Date.now();
      const linesAtStop = (await jobOf(stack, id)).log.lines;
      await waitFor(`${other} to own the job and store more`, async () => {
        const owners = await pendingOwners(redis, stack, [other]);
        return owners.includes(other) && (await jobOf(stack, id)).log.lines > linesAtStop ? true : undefined;
      }, 25000, 50);
      const takeoverMs = Date.now() - stoppedAt;
      console.log(`SIGTERM hand-over: ${other} stored new lines ${takeoverMs} ms after ${owner} exited (claim idle 30000 ms)`);
      expect(takeoverMs).toBeLessThan(5000);

      const { job } = await stack.waitTerminal(id, 60000);
      expect(job.status).toBe('completed');
      expectOneToN(await storedNumbers(stack, id), N);
      await expectFilesAgree(stack.world.logDir, id);
    }, 120000);
  });
});
