import { Global, Inject, Logger, Module, OnApplicationShutdown } from '@nestjs/common';
import { CONFIG, FlashpodsConfig } from '@flashpods/config';
import { DataSource } from 'typeorm';
import { connectWithRetry, createDataSource, migrate } from './data-source.factory';

class DataSourceCloser implements OnApplicationShutdown {
  constructor(@Inject(DataSource) private readonly ds: DataSource) {}
  async onApplicationShutdown(): Promise<void> {
    if (this.ds.isInitialized) await this.ds.destroy();
  }
}

/** A connected DataSource with the schema migrated (under the advisory lock) before anything uses it. */
@Global()
@Module({
  providers: [
    {
      provide: DataSource,
      inject: [CONFIG],
      useFactory: async (config: FlashpodsConfig) => {
        const log = new Logger('Database');
        const ds = await connectWithRetry(createDataSource(config.databaseUrl), (m) => log.warn(m));
        const applied = await migrate(ds);
        if (applied.length) log.log(`applied migrations: ${applied.join(', ')}`);
        return ds;
      },
    },
    DataSourceCloser,
  ],
  exports: [DataSource],
})
export class DatabaseModule {}
