import { InjectQueue } from '@nestjs/bullmq';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { CONFIG, delMany, FlashpodsConfig, getMany, REDIS, REDIS_KEYS, RedisClient, runJobOptions } from '@flashpods/config';
import { ACTIVE_STATUSES, JobErrorCode, JobName, JobStatus, LogKeep, QueueName, RedisKeys, StatusEvent } from '@flashpods/contracts';
import { endJobThroughStream, isFenced, StreamEndedError } from '@flashpods/job-stream';
import { JobState, Queue } from 'bullmq';
import { DataSource } from 'typeorm';
import { janitorMetrics } from './janitor.metrics';
import { SweepResult } from './sweeps.service';

/** Queue states in which a run-job entry will still be fetched by a runner. */
const QUEUED: readonly (JobState | 'unknown')[] = ['waiting', 'active', 'delayed', 'prioritized', 'waiting-children'];
const PENDING_BATCH = 500;

/**
 * How long a runner's heartbeat has been missing, by Redis's clock: 0 the first time it is found
 * missing (the moment is recorded), the age of that record afterwards.
 */
const SUSPECT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local first = redis.call('GET', KEYS[1])
if not first then
  redis.call('SET', KEYS[1], now, 'EX', ARGV[1])
  return 0
end
return now - tonumber(first)`;

interface ActiveRow {
  id: string;
  status: JobStatus;
  runner_id: string | null;
  timeout_seconds: number;
  log_keep: LogKeep;
  /** Milliseconds since the job started running (or was claimed, while still `starting`). */
  elapsed_ms: number;
  /** Milliseconds since the job was claimed. */
  claimed_ms: number;
}

/**
 * Every job reaches a terminal state, whatever dies. Every LIVENESS_INTERVAL_SECONDS, under its
 * own lock (one janitor at a time), also when no runner is alive:
 * - a `pending` job whose queue entry is gone (the API died between insert and enqueue, Redis lost
 *   its data, the entry's attempts ran out) is enqueued again;
 * - an active job past its timeout plus LIVENESS_TIMEOUT_GRACE_SECONDS ends `timed_out`;
 * - an active job whose runner has sent no heartbeat ends `failed` with `runner_lost`.
 * A job is ended through its own stream, after its last shipped line, by taking the stream
 * (which fences off its runner, should it still be alive) — see libs/job-stream.
 *
 * A heartbeat missing right after a Redis outage does not mean a dead runner: every key with a
 * TTL may have expired while Redis was frozen or away. So a runner is lost only once its
 * heartbeat has stayed missing for a further 2 beats + 2 s *as seen by this sweep*, measured by
 * Redis's own clock; a live runner beats again well within that once Redis is back.
 */
@Injectable()
export class LivenessSweep {
  private readonly log = new Logger(LivenessSweep.name);

  constructor(
    @Inject(CONFIG) private readonly config: FlashpodsConfig,
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(REDIS_KEYS) private readonly keys: RedisKeys,
    @InjectQueue(QueueName.Jobs) private readonly queue: Queue,
    private readonly ds: DataSource,
  ) {
    if (typeof (redis as unknown as { fpSuspect?: unknown }).fpSuspect !== 'function') {
      redis.defineCommand('fpSuspect', { numberOfKeys: 1, lua: SUSPECT });
    }
  }

  private get suspicionMs(): number {
    return (2 * this.config.runner.heartbeatSeconds + 2) * 1000;
  }

  async run(): Promise<SweepResult> {
    const requeued = await this.requeueLostEntries();
    const ended = await this.endStuckJobs();
    return { jobs: requeued + ended, files: 0, bytes: 0 };
  }

  /** `pending` jobs older than the grace whose queue entry will never be fetched: enqueued again. */
  async requeueLostEntries(): Promise<number> {
    const rows: { id: string }[] = await this.ds.query(
      `SELECT id::text FROM jobs WHERE status = $1 AND created_at < now() - make_interval(secs => $2)
       ORDER BY created_at LIMIT $3`,
      [JobStatus.Pending, this.config.janitor.pendingGraceSeconds, PENDING_BATCH],
    );
    let requeued = 0;
    for (const { id } of rows) {
      const state = await this.queue.getJobState(id);
      if (QUEUED.includes(state)) continue;
      // Finished or failed in BullMQ while the row is still pending: the entry must go before one with its id can be added.
      if (state !== 'unknown') await this.queue.remove(id);
      await this.queue.add(JobName.RunJob, { jobId: id }, runJobOptions(id));
      this.log.warn(`job ${id} was pending with its queue entry ${state === 'unknown' ? 'gone' : state}: enqueued again`);
      janitorMetrics.requeued();
      requeued++;
    }
    return requeued;
  }

  /** Active jobs past their timeout, or whose runner is lost: ended through their stream. Returns how many. */
  async endStuckJobs(): Promise<number> {
    const rows: ActiveRow[] = await this.ds.query(
      `SELECT id::text, status, runner_id, timeout_seconds, log_keep,
              (extract(epoch FROM now() - coalesce(running_at, started_at, created_at)) * 1000)::float8 AS elapsed_ms,
              (extract(epoch FROM now() - coalesce(started_at, created_at)) * 1000)::float8 AS claimed_ms
       FROM jobs WHERE status = ANY($1::text[])`,
      [[...ACTIVE_STATUSES]],
    );
    const lost = await this.lostRunners(rows);
    const graceMs = this.config.janitor.timeoutGraceSeconds * 1000;
    let ended = 0;
    for (const row of rows) {
      const runnerId = row.runner_id ?? 'unknown';
      if (row.elapsed_ms > row.timeout_seconds * 1000 + graceMs) {
        const message = `still ${row.status} ${Math.round(row.elapsed_ms / 1000)} s after it started, past its timeout of ${row.timeout_seconds} s; ended by the janitor`;
        ended += await this.end(row, `killed: timeout of ${row.timeout_seconds} s exceeded (${message})`, {
          status: JobStatus.TimedOut, at: Date.now(), runnerId, exitCode: null, error: null,
        });
      } else if (row.runner_id && lost.has(row.runner_id) && row.claimed_ms > this.config.runner.heartbeatSeconds * 3000) {
        const message = `runner ${row.runner_id} sent no heartbeat for ${Math.round(lost.get(row.runner_id)! / 1000)} s`;
        ended += await this.end(row, `failed: ${JobErrorCode.RunnerLost}: ${message}`, {
          status: JobStatus.Failed, at: Date.now(), runnerId, exitCode: null, error: { code: JobErrorCode.RunnerLost, message },
        });
      }
    }
    return ended;
  }

  /** Runners of these jobs whose heartbeat has been missing past the suspicion period, with how long (ms). */
  private async lostRunners(rows: ActiveRow[]): Promise<Map<string, number>> {
    const runners = [...new Set(rows.map((r) => r.runner_id).filter((r): r is string => r !== null))];
    const lost = new Map<string, number>();
    if (runners.length === 0) return lost;
    // Each runner's keys are in a slot of their own on a cluster: read and clear them key by key there.
    const beats = await getMany(this.redis, runners.map((r) => this.keys.runnerAlive(r)));
    const alive = runners.filter((_, i) => beats[i] !== null);
    await delMany(this.redis, alive.map((r) => this.keys.runnerSuspect(r)));
    const heartbeatWindowMs = this.config.runner.heartbeatSeconds * 3000;
    for (const runner of runners.filter((_, i) => beats[i] === null)) {
      // The record lapses soon after the suspicion period, so one left from an old, short absence
      // can never shorten a later one (the runner also clears it on every beat).
      const keepSeconds = Math.ceil(this.suspicionMs / 1000) + 3 * this.config.janitor.livenessIntervalSeconds;
      const missingFor = await (this.redis as unknown as { fpSuspect(key: string, ttl: number): Promise<number> }).fpSuspect(
        this.keys.runnerSuspect(runner),
        keepSeconds,
      );
      if (missingFor >= this.suspicionMs) lost.set(runner, missingFor + heartbeatWindowMs);
    }
    return lost;
  }

  private async end(row: ActiveRow, line: string, event: StatusEvent): Promise<number> {
    const jobId = row.id;
    this.log.warn(`job ${jobId}: ${line}`);
    try {
      await endJobThroughStream(
        this.redis, this.keys, jobId, 'janitor',
        // Its `log_keep` too: for `head_tail` this line is the job's last and must not be capped away.
        { ...this.config.stream, logMaxBytes: this.config.logs.maxBytes, logKeep: row.log_keep },
        line, event,
      );
    } catch (err) {
      // Its end is on the stream already (the persister is applying it), or someone took the stream
      // meanwhile: not ours to end. Anything else: say so, and let the next sweep try again.
      if (err instanceof StreamEndedError || isFenced(err)) return 0;
      this.log.error(`job ${jobId}: could not end it: ${(err as Error).message}; trying again next sweep`);
      return 0;
    }
    janitorMetrics.ended(event);
    // A runner that is alive after all (stalled, cut off) is fenced; this makes it stop its container too.
    await this.redis.multi().set(this.keys.jobCancel(jobId), '1', 'EX', 24 * 3600).publish(this.keys.cancelChannel, jobId).exec();
    return 1;
  }
}
