import { Module } from '@nestjs/common';
import { FlashpodsConfigModule } from '@flashpods/config';
import { DatabaseModule } from '@flashpods/database';
import { JobLogConsumer } from './job-log.consumer';

@Module({
  imports: [FlashpodsConfigModule, DatabaseModule],
  providers: [JobLogConsumer],
})
export class PersisterModule {}
