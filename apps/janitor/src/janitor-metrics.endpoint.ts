import { Inject, Injectable, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { CONFIG, FlashpodsConfig, MetricsEndpoint } from '@flashpods/config';
import { janitorMetrics, janitorRegistry } from './janitor.metrics';
import { SweepOutcome, SweepProcessor } from './sweep.processor';

/**
 * Counts every sweep run from the sweep worker's events (its result is the run's outcome) and
 * serves the janitor's registry on METRICS_PORT (none when 0).
 */
@Injectable()
export class JanitorMetricsEndpoint implements OnApplicationBootstrap, OnApplicationShutdown {
  private endpoint: MetricsEndpoint | undefined;

  constructor(
    @Inject(CONFIG) private readonly config: FlashpodsConfig,
    private readonly processor: SweepProcessor,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    // The worker exists by now: @nestjs/bullmq creates it when the module initialises.
    this.processor.worker.on('completed', (_job, outcome: SweepOutcome) => janitorMetrics.swept(outcome));
    this.processor.worker.on('failed', (job) => job && janitorMetrics.sweepFailed(job.name));
    if (!this.config.metrics.port) return;
    this.endpoint = await MetricsEndpoint.listen(janitorRegistry, this.config.metrics.host, this.config.metrics.port);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.endpoint?.close();
  }
}
