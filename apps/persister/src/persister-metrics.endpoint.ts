import { Inject, Injectable, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { CONFIG, FlashpodsConfig, MetricsEndpoint, REDIS, REDIS_KEYS } from '@flashpods/config';
import { RedisKeys } from '@flashpods/contracts';
import Redis from 'ioredis';
import { JobLogConsumer } from './job-log.consumer';
import { persisterRegistry, readGaugesFrom } from './persister.metrics';

/**
 * Serves the persister's registry on METRICS_PORT (none when 0). Its gauges are read at scrape
 * time from memory and Redis (one pipelined round trip, nothing from Postgres).
 */
@Injectable()
export class PersisterMetricsEndpoint implements OnApplicationBootstrap, OnApplicationShutdown {
  private endpoint: MetricsEndpoint | undefined;

  constructor(
    @Inject(CONFIG) private readonly config: FlashpodsConfig,
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(REDIS_KEYS) private readonly keys: RedisKeys,
    private readonly consumer: JobLogConsumer,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    readGaugesFrom({
      ownedJobs: () => this.consumer.ownedJobIds.length,
      lagEntries: () => this.lagEntries(),
      unclaimedJobs: () => this.unclaimedJobs(),
    });
    if (!this.config.metrics.port) return;
    this.endpoint = await MetricsEndpoint.listen(persisterRegistry, this.config.metrics.host, this.config.metrics.port);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.endpoint?.close();
  }

  /** XLEN of each owned job's stream, less the entry kept as its position. */
  private async lagEntries(): Promise<number> {
    const ids = this.consumer.ownedJobIds;
    if (ids.length === 0) return 0;
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.xlen(this.keys.jobLog(id));
    const replies = (await pipeline.exec()) ?? [];
    return replies.reduce((sum, [err, n]) => sum + (err ? 0 : Math.max(0, Number(n) - 1)), 0);
  }

  /** The consumer group's `lag` (XINFO GROUPS, Redis 7): entries of the active stream not yet delivered. */
  private async unclaimedJobs(): Promise<number> {
    const groups = (await this.redis.xinfo('GROUPS', this.keys.activeJobs)) as unknown[][];
    for (const g of groups) {
      const fields = new Map<string, unknown>();
      for (let i = 0; i + 1 < g.length; i += 2) fields.set(String(g[i]), g[i + 1]);
      if (fields.get('name') === this.keys.persisterGroup) return fields.get('lag') === null ? Number.NaN : Number(fields.get('lag'));
    }
    return 0;
  }
}
