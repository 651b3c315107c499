import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dropDatabase, ensureDatabase } from '@flashpods/database';

export const TEST_IMAGE = process.env.FLASHPODS_TEST_IMAGE ?? 'flashpods/busybox:test';

/** An isolated world for one test file: its own database, Redis key prefix and log directory. */
export interface TestWorld {
  id: string;
  databaseUrl: string;
  redisPrefix: string;
  logDir: string;
  env: Record<string, string>;
  dispose(): Promise<void>;
}

export async function createTestWorld(overrides: Record<string, string> = {}): Promise<TestWorld> {
  const id = randomBytes(5).toString('hex');
  const base = new URL(process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
  base.pathname = `/fp_test_${id}`;
  const databaseUrl = base.toString();
  await ensureDatabase(databaseUrl);
  const logDir = await mkdtemp(join(tmpdir(), `fp-logs-${id}-`));
  const redisPrefix = `fpt_${id}`;
  const env: Record<string, string> = {
    DATABASE_URL: databaseUrl,
    REDIS_URL: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
    REDIS_PREFIX: redisPrefix,
    LOG_DIR: logDir,
    FLASHPODS_ADMIN_TOKEN: `admin-${randomBytes(16).toString('hex')}`,
    LOG_FORMAT: 'json',
    ...overrides,
  };
  return {
    id,
    databaseUrl,
    redisPrefix,
    logDir,
    env,
    async dispose() {
      await dropDatabase(databaseUrl);
      await rm(logDir, { recursive: true, force: true });
    },
  };
}

/** A probe failure that no amount of waiting will mend: `waitFor` gives up at once. */
export class FatalProbeError extends Error {}

/** Polls `probe` every `intervalMs` until it returns a value that is not undefined, or fails at the deadline. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 20000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      if (err instanceof FatalProbeError) throw err;
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** `p`'s value, or a rejection if it has not settled within `ms` (a hang fails the test rather than its timeout). */
export function within<T>(ms: number, p: Promise<T>, what = 'an answer'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
