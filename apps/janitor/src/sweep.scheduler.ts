import { InjectQueue } from '@nestjs/bullmq';
import { Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { CONFIG, FlashpodsConfig } from '@flashpods/config';
import { JobName, QueueName, SWEEP_JOB_NAMES } from '@flashpods/contracts';
import { Queue } from 'bullmq';

/** One BullMQ job scheduler per sweep; upserting is idempotent, so every janitor may do it. */
@Injectable()
export class SweepScheduler implements OnApplicationBootstrap {
  private readonly log = new Logger(SweepScheduler.name);

  constructor(
    @Inject(CONFIG) private readonly config: FlashpodsConfig,
    @InjectQueue(QueueName.Janitor) private readonly queue: Queue,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const { intervalSeconds, livenessIntervalSeconds } = this.config.janitor;
    for (const sweep of SWEEP_JOB_NAMES) {
      const every = (sweep === JobName.LivenessSweep ? livenessIntervalSeconds : intervalSeconds) * 1000;
      await this.queue.upsertJobScheduler(sweep, { every }, { name: sweep, data: {}, opts: { removeOnComplete: 100, removeOnFail: 100 } });
    }
    this.log.log(`sweeps scheduled every ${intervalSeconds} s: ${SWEEP_JOB_NAMES.join(', ')} (liveness every ${livenessIntervalSeconds} s)`);
  }
}
