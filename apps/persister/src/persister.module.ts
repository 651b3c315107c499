import { Module } from '@nestjs/common';
import { FlashpodsConfigModule } from '@flashpods/config';
import { DatabaseModule } from '@flashpods/database';
import { JobLogConsumer } from './job-log.consumer';
import { PersisterMetricsEndpoint } from './persister-metrics.endpoint';

@Module({
  imports: [FlashpodsConfigModule, DatabaseModule],
  providers: [JobLogConsumer, PersisterMetricsEndpoint],
})
export class PersisterModule {}
