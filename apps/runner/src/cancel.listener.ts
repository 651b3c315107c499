import { Inject, Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { CONFIG, createRedis, FlashpodsConfig, REDIS_KEYS, RedisClient } from '@flashpods/config';
import { RedisKeys } from '@flashpods/contracts';
import { JobRunnerService } from './job-runner.service';

/** Cancel requests are published to every runner; the one holding the job kills it. */
@Injectable()
export class CancelListener implements OnModuleInit, OnApplicationShutdown {
  private readonly log = new Logger(CancelListener.name);
  private subscriber: RedisClient | undefined;

  constructor(
    @Inject(CONFIG) private readonly config: FlashpodsConfig,
    @Inject(REDIS_KEYS) private readonly keys: RedisKeys,
    private readonly runner: JobRunnerService,
  ) {}

  async onModuleInit(): Promise<void> {
    this.subscriber = createRedis(this.config, 'cancel-subscriber');
    this.subscriber.on('message', (_channel: string, jobId: string) => {
      if (this.runner.kill(jobId, 'cancel')) this.log.log(`cancelling job ${jobId}`);
    });
    await this.subscriber.subscribe(this.keys.cancelChannel);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.subscriber?.quit().catch(() => undefined);
  }
}
