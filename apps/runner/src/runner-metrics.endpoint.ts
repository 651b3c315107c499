import { Inject, Injectable, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { CONFIG, FlashpodsConfig, MetricsEndpoint } from '@flashpods/config';
import { JobRunnerService } from './job-runner.service';
import { concurrency, countRunningJobs, runnerRegistry } from './runner.metrics';

/** Serves the runner's registry on METRICS_PORT (none when 0) and reads the running-jobs gauge at scrape time. */
@Injectable()
export class RunnerMetricsEndpoint implements OnApplicationBootstrap, OnApplicationShutdown {
  private endpoint: MetricsEndpoint | undefined;

  constructor(
    @Inject(CONFIG) private readonly config: FlashpodsConfig,
    private readonly runner: JobRunnerService,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    concurrency.set(this.config.runner.concurrency);
    countRunningJobs(() => this.runner.runningJobIds.length);
    if (!this.config.metrics.port) return;
    this.endpoint = await MetricsEndpoint.listen(runnerRegistry, this.config.metrics.host, this.config.metrics.port);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.endpoint?.close();
  }
}
