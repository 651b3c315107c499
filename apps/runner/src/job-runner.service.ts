import { Inject, Injectable, Logger } from '@nestjs/common';
import { CONFIG, FlashpodsConfig, REDIS, REDIS_KEYS, RedisClient } from '@flashpods/config';
import { JobErrorCode, JobStatus, LogKeep, LogMode, RedisKeys, StatusEvent } from '@flashpods/contracts';
import { claimJob, JobEntity, transitionJob } from '@flashpods/database';
import { isFenced, JobLogPublisher, parseProgress, ShipProgress, takeJobStream } from '@flashpods/job-stream';
import { SecretMasker } from '@flashpods/log-format';
import { DataSource } from 'typeorm';
import { EXECUTOR, ExecFailure, ExecIO, ExecResult, Executor, Orphan, OutputGap } from './executors/executor';
import { LogCapture } from './log-capture';
import { runnerMetrics } from './runner.metrics';

type KillReason = 'timeout' | 'cancel';

/** Tries at reporting a job's end through its stream before falling back to Postgres alone. */
const REPORT_ATTEMPTS = 3;

/**
 * Runs jobs from claim to terminal status, and resumes the ones a previous run of this runner
 * left behind. The claim (`pending → starting`) is a conditional update in Postgres, so a job
 * cancelled or taken elsewhere is never run twice; then the runner takes the job's stream (a
 * fence: see libs/job-stream), so that once anyone else takes it over (the janitor ending a job
 * it believes lost) nothing more of this runner lands. Everything after the claim goes through
 * the job's stream, so the persister stores the terminal status only after the last line is on
 * disk. A failure of one job (a Redis error, a dead container) ends that job, never the process.
 */
@Injectable()
export class JobRunnerService {
  private readonly log = new Logger(JobRunnerService.name);
  private readonly kills = new Map<string, (reason: KillReason) => void>();
  private readonly active = new Set<Promise<void>>();

  constructor(
    @Inject(CONFIG) private readonly config: FlashpodsConfig,
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(REDIS_KEYS) private readonly keys: RedisKeys,
    @Inject(EXECUTOR) private readonly executor: Executor,
    private readonly ds: DataSource,
  ) {}

  get runningJobIds(): string[] {
    return [...this.kills.keys()];
  }

  /** Settles when every job this runner is running has ended (or after `ms`). */
  async idle(ms: number): Promise<boolean> {
    const timeout = new Promise<false>((r) => setTimeout(() => r(false), ms).unref());
    return Promise.race([Promise.allSettled([...this.active]).then(() => true), timeout]);
  }

  /** Kills a job this runner holds; false when it holds no such job. */
  kill(jobId: string, reason: KillReason): boolean {
    const kill = this.kills.get(jobId);
    kill?.(reason);
    return kill !== undefined;
  }

  publisherFor(jobId: string, token: string, logKeep: LogKeep, progress?: ShipProgress): JobLogPublisher {
    return new JobLogPublisher(
      this.redis,
      { keys: this.keys, jobId, token },
      { ...this.config.stream, logMaxBytes: this.config.logs.maxBytes, logKeep, observer: runnerMetrics.publisher },
      progress,
    );
  }

  async run(jobId: string): Promise<void> {
    const runnerId = this.config.runner.id;
    const job = await claimJob(this.ds, jobId, { runnerId, logMode: this.executor.logMode });
    if (!job) {
      this.log.log(`job ${jobId} is not pending (cancelled, claimed elsewhere or deleted); skipped`);
      return;
    }
    runnerMetrics.claimed(job);
    let token: string;
    let secrets: Record<string, string>;
    try {
      // Sent together (one round trip): the secrets do not depend on the stream. The persister is
      // told of the job only once the stream is ours.
      [token, secrets] = await Promise.all([
        takeJobStream(this.redis, this.keys, jobId, runnerId),
        this.redis.hgetall(this.keys.jobSecrets(jobId)),
      ]);
      await this.redis.xadd(this.keys.activeJobs, '*', 'job', jobId);
    } catch (err) {
      // Claimed, but it cannot start: the queue will not retry a job that is no longer pending, and
      // this runner is alive, so nobody else would end it before its timeout. End it here.
      const message = `could not start: ${(err as Error).message}`;
      this.log.error(`job ${jobId}: ${message}`);
      await transitionJob(this.ds, jobId, JobStatus.Failed, { runnerId, exitCode: null, errorCode: JobErrorCode.RunnerError, errorMessage: message });
      runnerMetrics.finished(job, { status: JobStatus.Failed, error: { code: JobErrorCode.RunnerError, message } });
      return;
    }
    const publisher = this.publisherFor(jobId, token, job.logKeep);
    const missing = job.secretNames.filter((name) => secrets[name] === undefined);
    if (missing.length) {
      // Never run a job without the secrets it was given: it would run, and print, as if it had them.
      await this.report(job, publisher, {
        status: JobStatus.Failed, at: Date.now(), runnerId, exitCode: null,
        error: { code: JobErrorCode.RunnerError, message: `the values of secrets ${missing.join(', ')} are gone from Redis; submit the job again` },
      });
      return;
    }
    const masker = new SecretMasker(Object.values(secrets));
    await this.track(
      job,
      publisher,
      masker,
      new LogCapture(publisher, masker, this.config.logs.lineMaxBytes),
      job.timeoutSeconds * 1000,
      undefined,
      (io) =>
        this.executor.run(
          {
            jobId,
            runnerId,
            image: job.image,
            command: job.command,
            env: { ...job.env, ...secrets },
            limits: job.limits,
            network: job.network && this.config.jobs.networkAllowed,
          },
          io,
        ),
    );
  }

  /**
   * Picks up a workload this runner left behind: replays its output from the start, skipping the
   * lines already shipped, follows it to its end and reports it as if nothing had happened. The
   * caller has taken the job's stream (`token`), so `progress` is final.
   */
  async resume(job: JobEntity, orphan: Orphan, token: string, progress: ShipProgress): Promise<void> {
    // Secret values were dropped from Redis once the container started; it still has them.
    const masker = new SecretMasker(job.secretNames.map((n) => orphan.env[n]).filter((v) => v !== undefined));
    const publisher = this.publisherFor(job.id, token, job.logKeep, progress);
    runnerMetrics.resumed();
    try {
      await this.redis.xadd(this.keys.activeJobs, '*', 'job', job.id);
      await publisher.system(
        `runner ${this.config.runner.id} restarted: re-attached to container ${orphan.handle.slice(0, 12)} after line ${progress.seq}`,
      );
      if (job.status === JobStatus.Starting) {
        await publisher.status({ status: JobStatus.Running, at: Date.now(), runnerId: this.config.runner.id });
      }
    } catch (err) {
      // Not resumed, and this runner is alive: nobody else would end the job before its timeout.
      if (isFenced(err)) return;
      const message = `could not resume: ${masker.maskString((err as Error).message)}`;
      this.log.error(`job ${job.id}: ${message}`);
      await this.report(job, publisher, {
        status: JobStatus.Failed, at: Date.now(), runnerId: this.config.runner.id, exitCode: null,
        error: { code: JobErrorCode.RunnerError, message },
      });
      await this.executor.discard(orphan.handle).catch((e: Error) => this.log.warn(`job ${job.id}: removing its container: ${e.message}`));
      return;
    }
    const ranFor = Date.now() - (job.runningAt ?? job.startedAt ?? new Date()).getTime();
    await this.track(
      job,
      publisher,
      masker,
      // A fast-mode container has no copy to replay: what is read next is new, nothing is skipped.
      new LogCapture(publisher, masker, this.config.logs.lineMaxBytes, orphan.logMode === LogMode.Fast ? undefined : progress),
      Math.max(0, job.timeoutSeconds * 1000 - ranFor),
      // Where a gap would begin: after the last line the previous run shipped, when it was read.
      { afterSeq: progress.seq, since: progress.ts || (job.runningAt ?? job.startedAt ?? new Date()).getTime() },
      (io) => this.executor.resume(orphan.handle, io),
    );
  }

  private track(...args: Parameters<JobRunnerService['execute']>): Promise<void> {
    const run = this.execute(...args);
    this.active.add(run);
    return run.finally(() => this.active.delete(run));
  }

  private async execute(
    job: JobEntity,
    publisher: JobLogPublisher,
    masker: SecretMasker,
    capture: LogCapture,
    timeoutMs: number,
    resumedAfter: { afterSeq: number; since: number } | undefined,
    start: (io: ExecIO) => Promise<ExecResult>,
  ): Promise<void> {
    const jobId = job.id;
    const runnerId = this.config.runner.id;
    const abort = new AbortController();
    let killedFor: KillReason | undefined;
    this.kills.set(jobId, (reason) => {
      killedFor ??= reason;
      abort.abort();
    });
    const timer = setTimeout(() => this.kill(jobId, 'timeout'), timeoutMs);

    let outcome: StatusEvent | undefined;
    try {
      if (await this.redis.exists(this.keys.jobCancel(jobId))) this.kill(jobId, 'cancel');
      const result = await start({
        output: (stream, chunk, ts) => capture.write(stream, chunk, ts),
        system: (text) => publisher.system(masker.maskString(text)),
        started: async () => {
          await Promise.all([
            this.redis.del(this.keys.jobSecrets(jobId)),
            publisher.status({ status: JobStatus.Running, at: Date.now(), runnerId }),
          ]);
        },
        gap: (gap) => {
          runnerMetrics.gap();
          return publisher.gap(gapLine(gap, resumedAfter));
        },
        signal: abort.signal,
      });
      await capture.end();
      outcome = this.outcome(result, killedFor);
    } catch (err) {
      await capture.end().catch(() => undefined);
      if (!isFenced(err) && !isFenced(publisher.failed)) outcome = this.failure(err as Error, killedFor, masker);
    } finally {
      clearTimeout(timer);
      this.kills.delete(jobId);
    }
    if (outcome) await this.report(job, publisher, outcome);
    else this.log.warn(`job ${jobId}: its stream was taken over (declared lost or timed out elsewhere); stopped it`);
    // Only now, with the end on the stream, may the container (the only copy of its output) go.
    // One left behind (an error here, a crash) is removed by the container sweep.
    await this.executor.remove(jobId).catch((err: Error) => this.log.warn(`job ${jobId}: removing its container: ${err.message}`));
  }

  /**
   * Puts the job's last line and terminal status on its stream, retrying with a fresh publisher
   * (from what Redis acknowledged) when shipping failed. If Redis keeps refusing (out of memory,
   * read-only), the status goes straight to Postgres with the reason: the job ends either way.
   */
  private async report(job: JobEntity, publisher: JobLogPublisher, outcome: StatusEvent): Promise<void> {
    const jobId = job.id;
    const line = this.describe(outcome, job.timeoutSeconds);
    let pub = publisher;
    let lastError: Error | undefined;
    for (let attempt = 1; attempt <= REPORT_ATTEMPTS; attempt++) {
      if (pub.failed) {
        // Continue from what Redis recorded (this runner still holds the stream, so it is final); a
        // chunk that ran but whose reply was lost is counted there and not here.
        const recorded = await this.redis.hgetall(this.keys.jobProgress(jobId)).then(parseProgress, () => pub.shipped);
        pub = new JobLogPublisher(this.redis, { keys: this.keys, jobId, token: pub.token }, pub.settings, recorded.seq >= pub.shipped.seq ? recorded : pub.shipped);
      }
      try {
        await pub.system(line);
        await pub.status(outcome);
        lastError = undefined;
        break;
      } catch (err) {
        if (isFenced(err)) {
          this.log.warn(`job ${jobId}: taken over before its end was reported; stopped`);
          return;
        }
        lastError = err as Error;
        await new Promise((r) => setTimeout(r, 500 * attempt));
      }
    }
    if (lastError) {
      const message = `could not write to Redis: ${lastError.message}`;
      this.log.error(`job ${jobId}: ${message}; recording its end in Postgres only`);
      const failed = outcome.status === JobStatus.Failed ? outcome : { ...outcome, status: JobStatus.Failed };
      await transitionJob(this.ds, jobId, failed.status, {
        at: new Date(failed.at),
        runnerId: failed.runnerId,
        exitCode: failed.exitCode ?? null,
        errorCode: failed.error?.code ?? JobErrorCode.RunnerError,
        errorMessage: failed.error ? `${failed.error.message}; ${message}` : message,
      }).catch((err: Error) => this.log.error(`job ${jobId}: recording its end failed too: ${err.message}`));
    }
    await this.redis.del(this.keys.jobSecrets(jobId), this.keys.jobCancel(jobId)).catch(() => undefined);
    runnerMetrics.finished(job, outcome, lastError !== undefined);
    this.log.log(`job ${jobId} ${outcome.status}${outcome.exitCode != null ? ` (exit ${outcome.exitCode})` : ''}`);
  }

  private outcome(result: ExecResult, killedFor: KillReason | undefined): StatusEvent {
    const base = { at: Date.now(), runnerId: this.config.runner.id, exitCode: result.exitCode };
    if (killedFor === 'timeout') return { ...base, status: JobStatus.TimedOut, error: null };
    if (killedFor === 'cancel') return { ...base, status: JobStatus.Cancelled, error: null };
    if (result.oomKilled) {
      return {
        ...base,
        status: JobStatus.Failed,
        error: { code: JobErrorCode.OomKilled, message: 'the container was killed for exceeding its memory limit' },
      };
    }
    if (result.exitCode === 0) return { ...base, status: JobStatus.Completed, error: null };
    return {
      ...base,
      status: JobStatus.Failed,
      error: { code: JobErrorCode.NonzeroExit, message: `exited with code ${result.exitCode}` },
    };
  }

  private failure(err: Error, killedFor: KillReason | undefined, masker: SecretMasker): StatusEvent {
    const base = { at: Date.now(), runnerId: this.config.runner.id, exitCode: null };
    if (killedFor === 'cancel') return { ...base, status: JobStatus.Cancelled, error: null };
    if (killedFor === 'timeout') return { ...base, status: JobStatus.TimedOut, error: null };
    if (err instanceof ExecFailure) return { ...base, status: JobStatus.Failed, error: { ...err.error, message: masker.maskString(err.error.message) } };
    this.log.error(`job run failed: ${masker.maskString(err.message)}`);
    return {
      ...base,
      status: JobStatus.Failed,
      error: { code: JobErrorCode.RunnerError, message: masker.maskString(err.message) },
    };
  }

  private describe(outcome: StatusEvent, timeoutSeconds: number): string {
    const code = outcome.exitCode != null ? ` (exit code ${outcome.exitCode})` : '';
    switch (outcome.status) {
      case JobStatus.TimedOut:
        return `killed: timeout of ${timeoutSeconds} s exceeded${code}`;
      case JobStatus.Cancelled:
        return `killed: cancelled${code}`;
      case JobStatus.Completed:
        return `exited with code ${outcome.exitCode}`;
      default:
        return outcome.error?.code === JobErrorCode.NonzeroExit
          ? `exited with code ${outcome.exitCode}`
          : `failed: ${outcome.error?.code}: ${outcome.error?.message}`;
    }
  }
}

/** The system line at a gap: when output was not captured, and why. */
export function gapLine(gap: OutputGap, resumed: { afterSeq: number; since: number } | undefined): string {
  const since = resumed ? new Date(resumed.since).toISOString() : 'the runner stopped';
  const until = new Date(gap.until).toISOString();
  const span = gap.exited ? `between ${since} and the container's exit at ${until}` : `between ${since} and ${until}`;
  const after = resumed ? `, after line ${resumed.afterSeq}` : '';
  return `fast mode: output written while no runner was attached (${span}${after}) was not captured`;
}
