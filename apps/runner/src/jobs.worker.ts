import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { bullRootOptions, CONFIG, FlashpodsConfig } from '@flashpods/config';
import { JobName, QueueName, RunJobPayload } from '@flashpods/contracts';
import { DelayedError, Job, Queue, Worker } from 'bullmq';
import { JobRunnerService } from './job-runner.service';
import { ReattachService } from './reattach.service';

const WATCHDOG_MS = 5000;
/** Work waiting this long while we have free slots means our worker has stopped fetching. */
const STUCK_MS = 10000;

/**
 * The runner's BullMQ worker, owned here rather than through a decorator because its lifecycle is
 * the product's: re-attach before taking new work; recreate the worker when it stops fetching
 * after a Redis outage (a known BullMQ failure mode); on SIGTERM stop taking jobs and give
 * running ones RUNNER_SHUTDOWN_GRACE_SECONDS before leaving them to be re-attached.
 */
@Injectable()
export class JobsWorker implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly log = new Logger(JobsWorker.name);
  private worker: Worker | undefined;
  private queue: Queue | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private lastFetch = Date.now();
  private stopping = false;
  private starting: Promise<void> = Promise.resolve();

  constructor(
    @Inject(CONFIG) private readonly config: FlashpodsConfig,
    private readonly runner: JobRunnerService,
    private readonly reattach: ReattachService,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    // Not awaited: start-up completes (logs flushed, shutdown hooks on) while this retries.
    this.starting = this.startWhenReattached().catch((err: Error) => this.log.error(`could not start taking jobs: ${err.message}`));
  }

  /**
   * New work only once what a previous run left is picked up again. A failure here (the engine or
   * Redis not answering yet) is retried: giving up would leave those jobs to the janitor.
   */
  private async startWhenReattached(): Promise<void> {
    for (let attempt = 1; !this.stopping; attempt++) {
      try {
        const resumed = await this.reattach.reattach();
        if (resumed) this.log.log(`resumed ${resumed} job(s) left by a previous run`);
        break;
      } catch (err) {
        if (this.stopping) return;
        const delay = Math.min(1000 * attempt, 10_000);
        this.log.warn(`re-attaching failed (${(err as Error).message}); trying again in ${delay / 1000} s before taking new jobs`);
        for (const until = Date.now() + delay; !this.stopping && Date.now() < until; ) await new Promise((r) => setTimeout(r, 100));
      }
    }
    if (this.stopping) return;
    this.queue = new Queue(QueueName.Jobs, bullRootOptions(this.config, 'runner-queue'));
    this.startWorker();
    this.watchdog = setInterval(() => void this.check().catch((e: Error) => this.log.warn(`watchdog: ${e.message}`)), WATCHDOG_MS);
  }

  async beforeApplicationShutdown(signal?: string): Promise<void> {
    this.stopping = true;
    await this.starting;
    clearInterval(this.watchdog);
    const graceMs = this.config.runner.shutdownGraceSeconds * 1000;
    this.log.log(`${signal ?? 'shutdown'}: taking no more jobs; ${this.runner.runningJobIds.length} running, waiting up to ${graceMs / 1000} s`);
    await this.worker?.pause(true).catch(() => undefined);
    const drained = await this.runner.idle(graceMs);
    if (!drained) {
      this.log.warn(`grace period over: leaving ${this.runner.runningJobIds.join(', ')} to be re-attached on restart`);
    }
    // Force: jobs still running are handed back (their containers keep running, labelled).
    await Promise.race([this.worker?.close(!drained), new Promise((r) => setTimeout(r, 2000).unref())]);
    await this.queue?.close().catch(() => undefined);
  }

  private startWorker(): void {
    const options = bullRootOptions(this.config, 'runner-worker');
    const worker = new Worker<RunJobPayload>(QueueName.Jobs, (job, token) => this.process(job, token), {
      connection: options.connection,
      prefix: options.prefix,
      concurrency: this.config.runner.concurrency,
    });
    worker.on('error', (err) => this.log.warn(`worker: ${err.message}`));
    this.worker = worker;
    this.lastFetch = Date.now();
  }

  private async process(job: Job<RunJobPayload>, token?: string): Promise<void> {
    this.lastFetch = Date.now();
    if (job.name !== JobName.RunJob) throw new Error(`unknown job name ${job.name}`);
    if (this.stopping) {
      // Fetched while shutting down (pausing does not cancel a fetch in flight): hand it back.
      await job.moveToDelayed(Date.now() + 500, token);
      throw new DelayedError();
    }
    await this.runner.run(job.data.jobId);
  }

  private async check(): Promise<void> {
    if (this.stopping || !this.queue || !this.worker) return;
    if (this.runner.runningJobIds.length >= this.config.runner.concurrency) {
      this.lastFetch = Date.now();
      return;
    }
    const waiting = await this.queue.getWaitingCount();
    if (waiting === 0) {
      this.lastFetch = Date.now();
      return;
    }
    if (Date.now() - this.lastFetch < STUCK_MS) return;
    this.log.warn(`${waiting} job(s) waiting and none fetched for ${STUCK_MS / 1000} s: recreating the worker`);
    const old = this.worker;
    this.startWorker();
    void old.close(true).catch(() => undefined);
  }
}
