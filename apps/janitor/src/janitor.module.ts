import { BullModule } from '@nestjs/bullmq';
import { Module } from '@nestjs/common';
import { bullRootOptions, FlashpodsConfigModule, getConfig } from '@flashpods/config';
import { QueueName } from '@flashpods/contracts';
import { DatabaseModule } from '@flashpods/database';
import { JanitorMetricsEndpoint } from './janitor-metrics.endpoint';
import { LivenessSweep } from './liveness-sweep.service';
import { SweepProcessor } from './sweep.processor';
import { SweepScheduler } from './sweep.scheduler';
import { SweepsService } from './sweeps.service';

@Module({
  imports: [
    FlashpodsConfigModule,
    DatabaseModule,
    BullModule.forRootAsync({ useFactory: () => bullRootOptions(getConfig(), 'janitor') }),
    BullModule.registerQueue({ name: QueueName.Janitor }, { name: QueueName.Jobs }),
  ],
  providers: [SweepsService, LivenessSweep, SweepProcessor, SweepScheduler, JanitorMetricsEndpoint],
})
export class JanitorModule {}
