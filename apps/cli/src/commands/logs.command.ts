import { JobStatus } from '@flashpods/contracts';
import { JobView, LogEntry, LogPage } from '../api.types';
import { LogStreamName } from '../args.util';
import { CliContext } from '../cli-context';
import { ExitCode } from '../exit-codes';
import { followLogs } from '../log-follower';
import { formatLine, LineFilter, matchesFilter } from '../log-line.format';

export interface LogsOptions {
  follow?: boolean;
  tail?: number;
  stream?: LogStreamName;
  /** Epoch ms. */
  since?: number;
  grep?: string;
  timestamps?: boolean;
  json?: boolean;
}

const PAGE = 1000;

/**
 * `flashpods logs ID`: the stored lines, filtered by the API (`stream`, `since`, `q`), paged by
 * `after_seq`; `--tail N` keeps the last N that match; `-f` then follows the live stream from the
 * last line examined until the job ends, filtering the same way here.
 */
export async function logsCommand(ctx: CliContext, id: string, o: LogsOptions): Promise<number> {
  const { client, out } = ctx;
  const filter: LineFilter = { stream: o.stream, since: o.since, grep: o.grep };
  const format = { json: o.json === true, timestamps: o.timestamps === true, system: true };
  const print = (e: LogEntry) => {
    const l = formatLine(e, format);
    if (l) out.line(l);
  };

  const job = await client.json<JobView>('GET', `/jobs/${id}`);
  let cursor = 0;
  // A pending job has no log yet (the API answers 404 logs_not_available); the live stream waits for it.
  if (!(o.follow && job.status === JobStatus.Pending)) {
    const unfiltered = filter.stream === undefined && filter.since === undefined && filter.grep === undefined;
    // Lines are numbered 1..n without gaps, so the last N unfiltered lines start after n - N.
    if (o.tail !== undefined && unfiltered) cursor = Math.max(0, job.log.lines - o.tail);
    const kept: LogEntry[] = [];
    for (;;) {
      const page = await client.json<LogPage>('GET', `/jobs/${id}/logs`, {
        query: { after_seq: cursor, limit: PAGE, stream: o.stream, since: o.since, q: o.grep },
      });
      for (const e of page.logs) {
        if (o.tail === undefined) print(e);
        else if (kept.push(e) > o.tail) kept.shift();
      }
      if (page.next_after_seq <= cursor) break;
      cursor = page.next_after_seq;
      // Following: a short page is the stored log's end for now; the live stream (which reconnects
      // by itself) takes it from here. Paging on while a busy job keeps adding a line or two per
      // page would never reach the stream, and a page request does not survive an API restart.
      if (o.follow && page.logs.length < PAGE) break;
    }
    kept.forEach(print);
  }
  if (!o.follow) return ExitCode.Ok;

  const follow = followLogs(client, id, cursor, {
    onLine: (e) => {
      if (matchesFilter(e, filter)) print(e);
    },
    onNotice: ctx.verbose ? (m) => out.notice(m) : undefined,
  });
  // Ctrl-C stops following (the job runs on) and exits 130, as `tail -f` does.
  const stopped = new Promise<'interrupted'>((resolve) => ctx.onInterrupt(() => resolve('interrupted')));
  const end = await Promise.race([follow.done, stopped]);
  if (end === 'interrupted') {
    follow.close();
    return ExitCode.Cancelled;
  }
  if (ctx.verbose) out.notice(`job ${id} ${end.status}`);
  return ExitCode.Ok;
}
