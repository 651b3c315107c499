import { JobPage, JobView } from '../api.types';
import { parseKeyValue } from '../args.util';
import { CliContext } from '../cli-context';
import { ExitCode } from '../exit-codes';
import { jobDetail, jobTable } from '../job.format';

/** The API's largest page. */
const PAGE_MAX = 200;

export interface LsOptions {
  status?: string;
  label?: string;
  limit: number;
  json?: boolean;
}

/** `flashpods ls`: newest first, up to `--limit`, paging with the API's cursor. */
export async function lsCommand(ctx: CliContext, o: LsOptions): Promise<number> {
  const label = o.label === undefined ? undefined : parseKeyValue(o.label, '--label').join('=');
  const jobs: JobView[] = [];
  let cursor: string | undefined;
  do {
    const page = await ctx.client.json<JobPage>('GET', '/jobs', {
      query: { status: o.status, label, limit: Math.min(PAGE_MAX, o.limit - jobs.length), cursor },
    });
    jobs.push(...page.jobs);
    cursor = page.next_cursor ?? undefined;
  } while (cursor !== undefined && jobs.length < o.limit);
  if (o.json) ctx.out.json(jobs);
  else ctx.out.out(jobTable(jobs, Date.now()));
  return ExitCode.Ok;
}

export async function getCommand(ctx: CliContext, id: string, o: { json?: boolean }): Promise<number> {
  const job = await ctx.client.json<JobView>('GET', `/jobs/${id}`);
  if (o.json) ctx.out.json(job);
  else ctx.out.out(jobDetail(job));
  return ExitCode.Ok;
}

/** `flashpods cancel ID`: asks for the cancel (a running job is killed by its runner shortly after). */
export async function cancelCommand(ctx: CliContext, id: string, o: { json?: boolean }): Promise<number> {
  const job = await ctx.client.json<JobView>('POST', `/jobs/${id}/cancel`);
  if (o.json) ctx.out.json(job);
  else ctx.out.out(job.status === 'cancelled' ? `cancelled ${job.id}\n` : `cancel requested for ${job.id} (${job.status})\n`);
  return ExitCode.Ok;
}

/** `flashpods rm ID`: deletes an ended job and its logs. */
export async function rmCommand(ctx: CliContext, id: string, o: { json?: boolean }): Promise<number> {
  await ctx.client.json('DELETE', `/jobs/${id}`);
  if (o.json) ctx.out.json({ id, deleted: true });
  else ctx.out.out(`deleted ${id}\n`);
  return ExitCode.Ok;
}
