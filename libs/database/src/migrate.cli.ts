import { getConfig } from '@flashpods/config';
import { createDataSource, ensureDatabase, migrate } from './data-source.factory';

async function main(): Promise<void> {
  const config = getConfig();
  await ensureDatabase(config.databaseUrl);
  const ds = await createDataSource(config.databaseUrl, 1).initialize();
  try {
    const applied = await migrate(ds);
    console.log(applied.length ? `applied: ${applied.join(', ')}` : 'schema up to date');
  } finally {
    await ds.destroy();
  }
}

main().catch((err: Error) => {
  console.error(`migrate failed: ${err.message}`);
  process.exit(1);
});
