import { Processor, WorkerHost } from '@nestjs/bullmq';
import { Inject, OnApplicationBootstrap } from '@nestjs/common';
import { CONFIG, FlashpodsConfig } from '@flashpods/config';
import { JobName, QueueName, RunJobPayload } from '@flashpods/contracts';
import { Job } from 'bullmq';
import { JobRunnerService } from './job-runner.service';

@Processor(QueueName.Jobs)
export class RunJobProcessor extends WorkerHost implements OnApplicationBootstrap {
  constructor(
    private readonly runner: JobRunnerService,
    @Inject(CONFIG) private readonly config: FlashpodsConfig,
  ) {
    super();
  }

  onApplicationBootstrap(): void {
    // The worker starts with concurrency 1, so it never takes more than configured before this.
    this.worker.concurrency = this.config.runner.concurrency;
  }

  async process(job: Job<RunJobPayload>): Promise<void> {
    if (job.name !== JobName.RunJob) throw new Error(`unknown job name ${job.name}`);
    await this.runner.run(job.data.jobId);
  }
}
