import { spawn } from 'node:child_process';
import { join } from 'node:path';
import Redis from 'ioredis';
import { PrivateRedis } from '../support/private-services';
import { freePort, ServiceName } from '../support/stack';
import { createTestWorld, FatalProbeError, TestWorld, waitFor } from '../support/test-env';

const ROOT = join(__dirname, '..', '..');
const SERVICES: ServiceName[] = ['api', 'runner', 'persister', 'janitor'];

/** Runs a built service until it exits (or `timeoutMs` passes, then it is killed and that fails). */
function runUntilExit(service: ServiceName, env: Record<string, string>, timeoutMs = 30000): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [join(ROOT, 'apps', service, 'dist', 'main.js')], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    proc.stdout.on('data', (b: Buffer) => (output += b.toString()));
    proc.stderr.on('data', (b: Buffer) => (output += b.toString()));
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`${service} still running after ${timeoutMs} ms:\n${output.slice(-3000)}`));
    }, timeoutMs);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe('start-up checks: every service refuses to start on a bad configuration, and says why', () => {
  let world: TestWorld;
  beforeAll(async () => (world = await createTestWorld({ API_PORT: '0', API_HOST: '127.0.0.1' })));
  afterAll(() => world?.dispose());

  it.each(SERVICES)('%s: names each bad variable and exits non-zero', async (service) => {
    const { code, output } = await runUntilExit(service, { ...world.env, LOG_MAX_BYTES: 'lots', RUNNER_CONCURRENCY: '0' });
    expect(code).toBe(2);
    expect(output).toContain('Invalid environment');
    expect(output).toMatch(/LOG_MAX_BYTES: [^;]*number/);
    expect(output).toMatch(/RUNNER_CONCURRENCY: [^;]*(greater than or equal to 1|>=\s*1)/);
    // Variables that are fine are not blamed.
    expect(output).not.toContain('DATABASE_URL');
  });

  describe('a Redis that may evict keys (maxmemory-policy allkeys-lru)', () => {
    let redis: PrivateRedis;
    beforeAll(async () => (redis = await PrivateRedis.start({ maxmemoryPolicy: 'allkeys-lru' })));
    afterAll(() => redis?.stop());

    it.each(SERVICES)('%s: refuses it, naming the policy, and exits non-zero', async (service) => {
      const { code, output } = await runUntilExit(service, { ...world.env, REDIS_URL: redis.url });
      expect(code).toBe(2);
      expect(output).toContain('Redis maxmemory-policy is "allkeys-lru"; Flashpods requires "noeviction"');
    });

    it('is accepted once the same server says noeviction (the refusal was the policy)', async () => {
      const admin = new Redis(redis.url);
      try {
        await admin.config('SET', 'maxmemory-policy', 'noeviction');
      } finally {
        admin.disconnect();
      }
      const port = await freePort();
      const proc = spawn(process.execPath, [join(ROOT, 'apps', 'api', 'dist', 'main.js')], {
        env: { ...process.env, ...world.env, REDIS_URL: redis.url, API_PORT: String(port) },
        stdio: 'ignore',
      });
      try {
        await waitFor('the api to be ready on the private Redis', async () => {
          if (proc.exitCode !== null) throw new FatalProbeError(`api exited with ${proc.exitCode}`);
          return (await fetch(`http://127.0.0.1:${port}/ready`).catch(() => undefined))?.ok ? true : undefined;
        }, 30000, 200);
      } finally {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await exited;
      }
    });
  });
});
