import { Module } from '@nestjs/common';
import { CONFIG, FlashpodsConfig, FlashpodsConfigModule } from '@flashpods/config';
import { DatabaseModule } from '@flashpods/database';
import Docker from 'dockerode';
import { CancelListener } from './cancel.listener';
import { DockerExecutor } from './executors/docker.executor';
import { EXECUTOR, Executor } from './executors/executor';
import { ProcessExecutor } from './executors/process.executor';
import { JobRunnerService } from './job-runner.service';
import { JobsWorker } from './jobs.worker';
import { ReattachService } from './reattach.service';
import { RunnerHeartbeat } from './runner-heartbeat';
import { RunnerMetricsEndpoint } from './runner-metrics.endpoint';

@Module({
  imports: [FlashpodsConfigModule, DatabaseModule],
  providers: [
    {
      provide: EXECUTOR,
      inject: [CONFIG],
      useFactory: (config: FlashpodsConfig): Executor =>
        config.runner.executor === 'process'
          ? new ProcessExecutor()
          : new DockerExecutor(new Docker(), config.runner.pullTimeoutSeconds * 1000, config.redis.prefix, config.runner.logMode),
    },
    JobRunnerService,
    ReattachService,
    JobsWorker,
    RunnerHeartbeat,
    CancelListener,
    RunnerMetricsEndpoint,
  ],
})
export class RunnerModule {}
