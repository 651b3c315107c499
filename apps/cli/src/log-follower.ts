import { EventSource } from 'eventsource';
import { ApiClient, errorOf } from './api-client';
import { JobView, LogEntry, StreamEnd } from './api.types';
import { CliError } from './cli-error';
import { ExitCode } from './exit-codes';

export interface FollowOptions {
  /** Called for every line once, in seq order. */
  onLine: (entry: LogEntry) => void;
  /** Told about reconnects (shown with `--verbose`). */
  onNotice?: (message: string) => void;
  /** Give up when no connection succeeds for this long. */
  giveUpMs?: number;
}

/** A running follow: `done` settles with the `end` event; `close()` stops it early. */
export interface Follow {
  done: Promise<StreamEnd>;
  close(): void;
}

const GIVE_UP_MS = 60_000;

/**
 * Follows `GET /jobs/:id/logs/stream` from after `afterSeq` until its `end` event. EventSource
 * reconnects by itself after a dropped connection and sends `Last-Event-ID` (the seq of the last
 * line), which the API resumes after: no gap, no duplicate (a line at or before the last seq seen
 * is dropped here too). A resume on a job that has ended meanwhile is answered `204`, which closes
 * the EventSource; the job's record then says how it ended.
 * The token goes in the Authorization header (a custom fetch): never in the URL.
 */
export function followLogs(client: ApiClient, jobId: string, afterSeq: number, opts: FollowOptions): Follow {
  const giveUpMs = opts.giveUpMs ?? GIVE_UP_MS;
  let lastSeq = afterSeq;
  let failingSince: number | undefined;
  let es: EventSource | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let finished = false;
  let settle: { resolve: (end: StreamEnd) => void; reject: (err: unknown) => void };
  const done = new Promise<StreamEnd>((resolve, reject) => (settle = { resolve, reject }));
  const stop = () => {
    finished = true;
    clearTimeout(retryTimer);
    es?.close();
  };
  const finish = (outcome: { end: StreamEnd } | { err: unknown }) => {
    if (finished) return;
    stop();
    if ('end' in outcome) settle.resolve(outcome.end);
    else settle.reject(outcome.err);
  };
  /** Whether we have been failing for too long; starts the clock on the first failure. */
  const givingUp = () => {
    failingSince ??= Date.now();
    if (Date.now() - failingSince <= giveUpMs) return false;
    finish({ err: new CliError(`lost the log stream of ${jobId}: the API at ${client.baseUrl} stayed unreachable`, ExitCode.Unavailable) });
    return true;
  };

  const connect = () => {
    /** The last answer that was not a stream: the EventSource itself only tells its status. */
    let refused: Response | undefined;
    const source = new EventSource(client.url(`/jobs/${jobId}/logs/stream`, { after_seq: lastSeq }), {
      fetch: async (input, init) => {
        const res = await client.authFetch(input, init as RequestInit);
        refused = res.status === 200 ? undefined : res.clone();
        return res;
      },
    });
    es = source;
    source.addEventListener('open', () => {
      failingSince = undefined;
    });
    source.addEventListener('line', (ev) => {
      let entry: LogEntry;
      try {
        entry = JSON.parse(ev.data) as LogEntry;
      } catch {
        return finish({ err: new CliError(`the log stream sent a line that is not JSON: ${ev.data.slice(0, 100)}`, ExitCode.Unavailable) });
      }
      if (entry.seq <= lastSeq) return;
      lastSeq = entry.seq;
      opts.onLine(entry);
    });
    source.addEventListener('end', (ev) => {
      try {
        finish({ end: JSON.parse(ev.data) as StreamEnd });
      } catch {
        finish({ err: new CliError('the log stream ended with an unreadable end event', ExitCode.Unavailable) });
      }
    });
    // Both the EventSource's own failures and the API's `event: error` ("stream interrupted;
    // reconnect") arrive here. While CONNECTING, the EventSource reconnects by itself.
    source.addEventListener('error', () => {
      if (finished) return;
      if (source.readyState !== EventSource.CLOSED) {
        if (!givingUp()) opts.onNotice?.(`log stream interrupted after seq ${lastSeq}; reconnecting`);
        return;
      }
      // Closed for good: an answer that was not a stream. A busy or recovering API (429, 502,
      // 503, 504) is asked again after its Retry-After, from the last line seen.
      if (refused !== undefined && RETRYABLE.includes(refused.status)) {
        if (givingUp()) return;
        const wait = retryAfterMs(refused.headers.get('retry-after'));
        opts.onNotice?.(`log stream answered ${refused.status}; retrying in ${wait} ms from seq ${lastSeq}`);
        retryTimer = setTimeout(connect, wait);
        return;
      }
      void closedBy(client, jobId, refused).then((end) => finish({ end }), (err: unknown) => finish({ err }));
    });
  };
  connect();
  return { done, close: stop };
}

const RETRYABLE = [429, 502, 503, 504];

/** `Retry-After` in seconds (the API sends seconds), between 0.5 s and 10 s; 1 s without one. */
export function retryAfterMs(header: string | null): number {
  const s = header !== null && /^\d+$/.test(header.trim()) ? Number(header.trim()) : 1;
  return Math.min(10_000, Math.max(500, s * 1000));
}

/** Why the EventSource closed: `204` means the job has ended and every line was sent. */
async function closedBy(client: ApiClient, jobId: string, refused: Response | undefined): Promise<StreamEnd> {
  if (refused?.status === 204) {
    const job = await client.json<JobView>('GET', `/jobs/${jobId}`);
    return { status: job.status, exit_code: job.exit_code, error_code: job.error?.code ?? null };
  }
  if (refused) throw await errorOf(refused);
  throw new CliError(`the log stream of ${jobId} closed unexpectedly`, ExitCode.Unavailable);
}
