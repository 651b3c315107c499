import { InjectQueue } from '@nestjs/bullmq';
import { Controller, Get, Header, OnModuleInit } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { QueueName } from '@flashpods/contracts';
import { Queue } from 'bullmq';
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { DataSource } from 'typeorm';
import { Public } from '../auth/auth.guard';

/** Prometheus metrics: process defaults, queue depth, jobs by status. No labels carry user data. */
@ApiTags('health')
@Public()
@Controller('metrics')
export class MetricsController implements OnModuleInit {
  private readonly registry = new Registry();

  constructor(
    @InjectQueue(QueueName.Jobs) private readonly queue: Queue,
    private readonly ds: DataSource,
  ) {}

  onModuleInit(): void {
    collectDefaultMetrics({ register: this.registry, prefix: 'flashpods_api_' });
    const queue = this.queue;
    const ds = this.ds;
    new Gauge({
      name: 'flashpods_queue_jobs',
      help: 'BullMQ jobs queue, by state',
      labelNames: ['state'],
      registers: [this.registry],
      async collect() {
        const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed');
        for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'flashpods_jobs',
      help: 'Jobs in Postgres, by status',
      labelNames: ['status'],
      registers: [this.registry],
      async collect() {
        const rows: { status: string; n: string }[] = await ds.query('SELECT status, count(*) AS n FROM jobs GROUP BY status');
        this.reset();
        for (const r of rows) this.set({ status: r.status }, Number(r.n));
      },
    });
  }

  @Get()
  @Header('Content-Type', 'text/plain; version=0.0.4')
  async metrics(): Promise<string> {
    return this.registry.metrics();
  }
}
