import { BullModule } from '@nestjs/bullmq';
import { Module } from '@nestjs/common';
import { CONFIG, FlashpodsConfig, FlashpodsConfigModule, bullRootOptions, getConfig } from '@flashpods/config';
import { QueueName } from '@flashpods/contracts';
import { DatabaseModule } from '@flashpods/database';
import Docker from 'dockerode';
import { CancelListener } from './cancel.listener';
import { DockerExecutor } from './executors/docker.executor';
import { EXECUTOR, Executor } from './executors/executor';
import { ProcessExecutor } from './executors/process.executor';
import { JobRunnerService } from './job-runner.service';
import { RunJobProcessor } from './run-job.processor';

@Module({
  imports: [
    FlashpodsConfigModule,
    DatabaseModule,
    BullModule.forRootAsync({ useFactory: () => bullRootOptions(getConfig(), 'runner') }),
    BullModule.registerQueue({ name: QueueName.Jobs }),
  ],
  providers: [
    {
      provide: EXECUTOR,
      inject: [CONFIG],
      useFactory: (config: FlashpodsConfig): Executor =>
        config.runner.executor === 'process'
          ? new ProcessExecutor()
          : new DockerExecutor(new Docker(), config.runner.pullTimeoutSeconds * 1000),
    },
    JobRunnerService,
    RunJobProcessor,
    CancelListener,
  ],
})
export class RunnerModule {}
