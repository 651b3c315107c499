import { DataSource, MigrationExecutor } from 'typeorm';
import { ApiTokenEntity } from './api-token.entity';
import { JobEntity } from './job.entity';
import { InitialSchema1763680000000 } from './migrations/1763680000000-initial-schema';
import { ApiTokens1763690000000 } from './migrations/1763690000000-api-tokens';
import { LogKeep1763750000000 } from './migrations/1763750000000-log-keep';
import { TerminalJobsIndex1764660000000 } from './migrations/1764660000000-terminal-jobs-index';
import { LogMode1764760000000 } from './migrations/1764760000000-log-mode';

export const ENTITIES = [JobEntity, ApiTokenEntity];
export const MIGRATIONS = [InitialSchema1763680000000, ApiTokens1763690000000, LogKeep1763750000000, TerminalJobsIndex1764660000000, LogMode1764760000000];

/** Any fixed 64-bit number: all Flashpods services agree on it to serialise migrations. */
const MIGRATION_LOCK_ID = 7_262_024_011;

export function createDataSource(url: string, poolSize = 10): DataSource {
  return new DataSource({
    type: 'postgres',
    url,
    entities: ENTITIES,
    migrations: MIGRATIONS,
    synchronize: false,
    migrationsRun: false,
    logging: false,
    extra: { max: poolSize, connectionTimeoutMillis: 5000 },
  });
}

/**
 * Applies pending migrations under a Postgres advisory lock, so several services starting at
 * once run them exactly once. Returns the names of the migrations it applied.
 */
export async function migrate(ds: DataSource): Promise<string[]> {
  const runner = ds.createQueryRunner();
  await runner.connect();
  try {
    await runner.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_ID]);
    // On the connection that holds the lock: a pool of one must not wait on itself.
    const executor = new MigrationExecutor(ds, runner);
    executor.transaction = 'each';
    const applied = await executor.executePendingMigrations();
    return applied.map((m) => m.name);
  } finally {
    await runner.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_ID]).catch(() => undefined);
    await runner.release();
  }
}

/** Initialises the data source, retrying with a message while Postgres cannot be reached. */
export async function connectWithRetry(
  ds: DataSource,
  log: (message: string) => void,
  attempts = Number.POSITIVE_INFINITY,
): Promise<DataSource> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await ds.initialize();
    } catch (err) {
      if (attempt >= attempts) throw err;
      log(`Postgres not reachable (${(err as Error).message}); retrying in 2 s`);
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
}

/** Runs `work` on a connection to the `postgres` database of the server in `url`, with the database name checked. */
async function withMaintenanceConnection(url: string, work: (ds: DataSource, name: string) => Promise<void>): Promise<void> {
  const name = decodeURIComponent(new URL(url).pathname.replace(/^\//, ''));
  if (!/^[A-Za-z0-9_]+$/.test(name)) throw new Error(`refusing to manage a database named "${name}"`);
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const ds = await new DataSource({ type: 'postgres', url: admin.toString() }).initialize();
  try {
    await work(ds, name);
  } finally {
    await ds.destroy();
  }
}

/** Creates the database named in `url` when it does not exist (local runs and tests). */
export function ensureDatabase(url: string): Promise<void> {
  return withMaintenanceConnection(url, async (ds, name) => {
    const rows: unknown[] = await ds.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (rows.length === 0) await ds.query(`CREATE DATABASE "${name}"`);
  });
}

/** Drops the database named in `url` (tests). */
export function dropDatabase(url: string): Promise<void> {
  return withMaintenanceConnection(url, async (ds, name) => {
    await ds.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  });
}
