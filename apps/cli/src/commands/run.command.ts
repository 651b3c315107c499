import { JobStatus } from '@flashpods/contracts';
import { CreateJobBody, JobView, StreamEnd } from '../api.types';
import { keyValues } from '../args.util';
import { CliContext } from '../cli-context';
import { ApiResponseError } from '../cli-error';
import { ExitCode, jobExitCode } from '../exit-codes';
import { followLogs } from '../log-follower';
import { formatLine } from '../log-line.format';

export interface RunOptions {
  env: string[];
  secret: string[];
  label: string[];
  timeout?: number;
  memory?: number;
  cpus?: number;
  pids?: number;
  network?: boolean;
  detach?: boolean;
  json?: boolean;
}

/** After Ctrl-C has asked for the cancel, how long to wait for the job's end before exiting anyway. */
const CANCEL_WAIT_MS = 15_000;

export function createJobBody(image: string, command: string[], o: RunOptions, env: NodeJS.ProcessEnv): CreateJobBody {
  const limits = { memory_mb: o.memory, cpus: o.cpus, pids: o.pids };
  return {
    image,
    ...(command.length ? { command } : {}),
    env: keyValues(o.env, '--env', env),
    secrets: keyValues(o.secret, '--secret', env),
    labels: keyValues(o.label, '--label'),
    timeout_seconds: o.timeout,
    limits: Object.values(limits).some((v) => v !== undefined) ? limits : undefined,
    network: o.network ? true : undefined,
  };
}

/**
 * `flashpods run IMAGE -- CMD...`: submits the job, streams its stdout to stdout and its stderr
 * to stderr as they are produced, and exits with the job's exit code. Ctrl-C cancels the job,
 * waits (briefly) for it to end, and exits 130; a second Ctrl-C exits at once.
 */
export async function runCommand(ctx: CliContext, image: string, command: string[], o: RunOptions): Promise<number> {
  const { client, out } = ctx;
  const body = createJobBody(image, command, o, ctx.env);
  let interrupted = false;
  let jobId: string | undefined;
  let exitNow: ((code: number) => void) | undefined;
  const forced = new Promise<number>((resolve) => (exitNow = resolve));

  const cancel = async (id: string) => {
    out.notice(`cancelling job ${id} (Ctrl-C again to exit now)`);
    try {
      await client.json('POST', `/jobs/${id}/cancel`);
    } catch (err) {
      // 409: it ended meanwhile; the stream tells how.
      if (!(err instanceof ApiResponseError && err.status === 409)) out.notice(`could not cancel ${id}: ${(err as Error).message}`);
    }
    setTimeout(() => exitNow?.(ExitCode.Cancelled), CANCEL_WAIT_MS).unref();
  };
  ctx.onInterrupt(() => {
    if (interrupted) return exitNow?.(ExitCode.Cancelled);
    interrupted = true;
    if (jobId !== undefined) void cancel(jobId);
  });

  const job = await client.json<JobView>('POST', '/jobs', { body });
  jobId = job.id;
  if (o.detach) {
    if (o.json) out.json(job);
    else out.out(`${job.id}\n`);
    return ExitCode.Ok;
  }
  if (ctx.verbose) out.notice(`job ${job.id} submitted`);
  if (interrupted) void cancel(job.id);

  const format = { json: o.json === true, timestamps: false, system: ctx.verbose };
  const follow = followLogs(client, job.id, 0, {
    onLine: (e) => {
      const l = formatLine(e, format);
      if (l) out.line(l);
    },
    onNotice: ctx.verbose ? (m) => out.notice(m) : undefined,
  });
  const ended = await Promise.race([follow.done, forced]);
  if (typeof ended === 'number') {
    follow.close();
    return ended;
  }
  const code = jobExitCode(ended);
  await explain(ctx, job.id, ended, code);
  return code;
}

/** One line on stderr when the job ended without an exit code of its own (or always, verbose). */
async function explain(ctx: CliContext, id: string, end: StreamEnd, code: number): Promise<void> {
  const ownCode = end.status === JobStatus.Failed && code === end.exit_code;
  if (end.status === JobStatus.Completed || (ownCode && !ctx.verbose)) {
    if (ctx.verbose) ctx.out.notice(`job ${id} ${end.status} (exit ${code})`);
    return;
  }
  let detail = end.error_code ?? '';
  if (end.status === JobStatus.Failed) {
    const job = await ctx.client.json<JobView>('GET', `/jobs/${id}`).catch(() => undefined);
    if (job?.error) detail = `${job.error.code}: ${job.error.message.trim()}`;
  }
  const status = end.status === JobStatus.TimedOut ? 'timed out' : end.status;
  ctx.out.notice(`job ${id} ${status}${detail ? ` (${detail})` : ''}; exit ${code}`);
}
