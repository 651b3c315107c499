import { InjectQueue } from '@nestjs/bullmq';
import { Controller, Get, Header, Inject, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { CONFIG, FlashpodsConfig, refreshEvery } from '@flashpods/config';
import { JobStatus, QueueName } from '@flashpods/contracts';
import { Queue } from 'bullmq';
import { Gauge } from 'prom-client';
import { DataSource } from 'typeorm';
import { Public } from '../auth/auth.guard';
import { ApiMedia, ApiPublicOp } from '../openapi/api-docs.decorators';
import { apiRegistry } from './api.metrics';

/**
 * Prometheus metrics of the API (api.metrics.ts), the process metrics, and two views of the whole
 * system: the jobs queue by state (read from Redis at scrape time, cheap) and jobs in Postgres by
 * status, refreshed every METRICS_REFRESH_SECONDS, never per scrape, so scraping N APIs every few
 * seconds costs no table scans. The janitor's sweep metrics are the janitor's own (METRICS_PORT).
 */
@ApiTags('health')
@Public()
@Controller('metrics')
export class MetricsController implements OnModuleInit, OnModuleDestroy {
  private readonly log = new Logger(MetricsController.name);
  private stopRefresh: (() => void) | undefined;

  constructor(
    @InjectQueue(QueueName.Jobs) private readonly queue: Queue,
    private readonly ds: DataSource,
    @Inject(CONFIG) private readonly config: FlashpodsConfig,
  ) {}

  onModuleInit(): void {
    const queue = this.queue;
    new Gauge({
      name: 'flashpods_queue_jobs',
      help: 'Entries of the BullMQ jobs queue, by state',
      labelNames: ['state'],
      registers: [apiRegistry],
      async collect() {
        // Redis down: no figure rather than a failed scrape (the process metrics still matter then).
        const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed').catch(() => undefined);
        this.reset();
        for (const [state, n] of Object.entries(counts ?? {})) this.set({ state }, n);
      },
    });
    const jobs = new Gauge({
      name: 'flashpods_jobs',
      help: 'Jobs in Postgres, by status (refreshed every METRICS_REFRESH_SECONDS)',
      labelNames: ['status'],
      registers: [apiRegistry],
    });
    const refreshed = new Gauge({
      name: 'flashpods_jobs_refreshed_timestamp_seconds',
      help: 'When flashpods_jobs was last read from Postgres (Unix time)',
      registers: [apiRegistry],
    });
    this.stopRefresh = refreshEvery(
      this.config.metrics.refreshSeconds,
      async () => {
        const rows: { status: string; n: string }[] = await this.ds.query('SELECT status, count(*) AS n FROM jobs GROUP BY status');
        const counts = new Map(rows.map((r) => [r.status, Number(r.n)]));
        // Every status always, so a status that drains to zero reads 0, not a vanished series.
        for (const status of Object.values(JobStatus)) jobs.set({ status }, counts.get(status) ?? 0);
        refreshed.set(Date.now() / 1000);
      },
      (err) => this.log.warn(`refreshing flashpods_jobs: ${err.message}`),
    );
  }

  onModuleDestroy(): void {
    this.stopRefresh?.();
  }

  @Get()
  @Header('Content-Type', apiRegistry.contentType)
  @ApiPublicOp('getMetrics', 'Prometheus metrics', 'Text exposition format 0.0.4: the API\'s own metrics, process metrics, queue depth, jobs by status. No token needed. The runner, persister and janitor serve theirs on METRICS_PORT.')
  @ApiMedia(200, 'text/plain', { type: 'string' }, 'The metrics.')
  async metrics(): Promise<string> {
    return apiRegistry.metrics();
  }
}
