import { InjectQueue } from '@nestjs/bullmq';
import { Controller, Get, Header, Inject, OnModuleInit } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { QueueName, RedisKeys, SWEEP_JOB_NAMES } from '@flashpods/contracts';
import { REDIS_KEYS, REDIS } from '@flashpods/config';
import Redis from 'ioredis';
import { Queue } from 'bullmq';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { DataSource } from 'typeorm';
import { Public } from '../auth/auth.guard';
import { LogStreamService } from '../logs/log-stream.service';

/** Prometheus metrics: process defaults, queue depth, jobs by status. No labels carry user data. */
@ApiTags('health')
@Public()
@Controller('metrics')
export class MetricsController implements OnModuleInit {
  private readonly registry = new Registry();

  constructor(
    @InjectQueue(QueueName.Jobs) private readonly queue: Queue,
    private readonly ds: DataSource,
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(REDIS_KEYS) private readonly keys: RedisKeys,
    private readonly live: LogStreamService,
  ) {}

  onModuleInit(): void {
    collectDefaultMetrics({ register: this.registry, prefix: 'flashpods_api_' });
    this.sweepMetrics();
    const live = this.live;
    new Gauge({
      name: 'flashpods_api_sse_clients',
      help: 'Open live-log (SSE) clients of this API instance',
      registers: [this.registry],
      collect() {
        this.set(live.stats.clients);
      },
    });
    new Gauge({
      name: 'flashpods_api_sse_feeds',
      help: 'Jobs this API instance reads from Redis for its live-log clients (one reader each, whatever the number of clients)',
      registers: [this.registry],
      collect() {
        this.set(live.stats.feeds);
      },
    });
    new Gauge({
      name: 'flashpods_api_sse_buffered_bytes',
      help: 'Bytes written to live-log clients that their sockets have not taken yet (bounded per client by API_SSE_CLIENT_BUFFER_BYTES plus one batch)',
      registers: [this.registry],
      collect() {
        this.set(live.stats.bufferedBytes);
      },
    });
    new Counter({
      name: 'flashpods_api_sse_slow_clients_total',
      help: 'Live-log clients that fell behind (more than API_SSE_CLIENT_BUFFER_BYTES unsent, or lines trimmed before they were read) and were fed from memory or the file at their own pace',
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(live.counters.overflows);
      },
    });
    new Counter({
      name: 'flashpods_api_sse_closed_total',
      help: 'Live-log clients closed with a reason (an error event) instead of end',
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(live.counters.failed);
      },
    });
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

  /** What the janitors recorded per sweep (they have no HTTP port; the totals live in Redis). */
  private sweepMetrics(): void {
    const redis = this.redis;
    const keys = this.keys;
    const read = async () =>
      Promise.all(SWEEP_JOB_NAMES.map(async (sweep) => [sweep, await redis.hgetall(keys.janitorStats(sweep))] as const));
    const gauge = (name: string, help: string, field: string) =>
      new Gauge({
        name,
        help,
        labelNames: ['sweep'],
        registers: [this.registry],
        async collect() {
          for (const [sweep, stats] of await read()) if (stats[field] !== undefined) this.set({ sweep }, Number(stats[field]));
        },
      });
    gauge('flashpods_janitor_sweeps_total', 'Sweeps run', 'runs');
    gauge('flashpods_janitor_deleted_jobs_total', 'Jobs cleaned or deleted by sweeps', 'jobs_total');
    gauge('flashpods_janitor_deleted_files_total', 'Files deleted by sweeps', 'files_total');
    gauge('flashpods_janitor_deleted_bytes_total', 'Bytes deleted by sweeps', 'bytes_total');
    gauge('flashpods_janitor_last_sweep_milliseconds', 'Duration of the last sweep', 'last_ms');
  }

  @Get()
  @Header('Content-Type', 'text/plain; version=0.0.4')
  async metrics(): Promise<string> {
    return this.registry.metrics();
  }
}
