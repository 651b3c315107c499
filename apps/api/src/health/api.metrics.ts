import { createServiceRegistry } from '@flashpods/config';
import type { NextFunction, Request, Response } from 'express';
import { performance } from 'node:perf_hooks';
import { Counter, Gauge, Histogram } from 'prom-client';
import { isCatchAllRoute } from '../common/allowed-methods';

/**
 * Every metric the API defines itself, in one place; request handling only calls the one-line
 * recorders of `apiMetrics`. The gauges read from Redis and Postgres are in metrics.controller.ts,
 * which serves this registry on /metrics. No label carries user data: routes are the route
 * patterns (`/jobs/:id`), never the URL.
 */
export const apiRegistry = createServiceRegistry('api');
const registers = [apiRegistry];

const requests = new Counter({
  name: 'flashpods_api_http_requests_total',
  help: 'HTTP requests answered, by method, route pattern and status code',
  labelNames: ['method', 'route', 'status'],
  registers,
});
const requestDuration = new Histogram({
  name: 'flashpods_api_http_request_duration_seconds',
  help: 'Time to answer an HTTP request, by method and route pattern (log streams, which stay open, excluded)',
  labelNames: ['method', 'route'],
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers,
});
const sseClients = new Gauge({ name: 'flashpods_api_sse_clients', help: 'Log streams (Server-Sent Events) open now on this API', registers });
const sseStreams = new Counter({ name: 'flashpods_api_sse_streams_total', help: 'Log streams opened on this API', registers });
/** What the live-log hub reports at scrape time (set by LogStreamService when it starts). */
let liveStats: () => { feeds: number; bufferedBytes: number } = () => ({ feeds: 0, bufferedBytes: 0 });
new Gauge({
  name: 'flashpods_api_sse_feeds',
  help: 'Jobs this API reads from Redis for its live-log clients (one feed each, whatever the number of clients)',
  registers,
  collect() {
    this.set(liveStats().feeds);
  },
});
new Gauge({
  name: 'flashpods_api_sse_buffered_bytes',
  help: 'Bytes written to live-log clients that their sockets have not taken yet (bounded per client by API_SSE_CLIENT_BUFFER_BYTES plus one batch)',
  registers,
  collect() {
    this.set(liveStats().bufferedBytes);
  },
});
const sseSlowClients = new Counter({
  name: 'flashpods_api_sse_slow_clients_total',
  help: 'Live-log clients that fell behind and were fed from memory or the file at their own pace, by reason: buffer (more than API_SSE_CLIENT_BUFFER_BYTES unsent) or trimmed (lines trimmed from the stream before the feed read them)',
  labelNames: ['reason'],
  registers,
});
for (const reason of ['buffer', 'trimmed']) sseSlowClients.inc({ reason }, 0);
const sseFailed = new Counter({
  name: 'flashpods_api_sse_closed_total',
  help: 'Live-log clients closed with a reason (an error event) instead of end',
  registers,
});
const jobsSubmitted = new Counter({ name: 'flashpods_api_jobs_submitted_total', help: 'Jobs accepted by POST /jobs on this API', registers });

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

export const apiMetrics = {
  submitted: () => jobsSubmitted.inc(),
  /** A live-log client fell behind and is fed at its own pace. */
  sseSlowClient: (reason: 'buffer' | 'trimmed') => sseSlowClients.inc({ reason }),
  /** A live-log client was closed with an `error` event. */
  sseFailed: () => sseFailed.inc(),
  /** Where the feeds and buffered-bytes gauges read from (the live-log hub). */
  liveStats(stats: () => { feeds: number; bufferedBytes: number }): void {
    liveStats = stats;
  },
  /** A log stream opened; the returned function closes it (call it once). */
  sseOpened(): () => void {
    sseStreams.inc();
    sseClients.inc();
    let open = true;
    return () => {
      if (open) sseClients.dec();
      open = false;
    };
  },

  /** Express middleware: counts every request once it is answered, by its route pattern. */
  httpMiddleware(req: Request, res: Response, next: NextFunction): void {
    const started = performance.now();
    res.once('finish', () => {
      // Set by Express on the request once a route matched (Nest's routes, Bull Board's router); a
      // route for every method is a Nest module's middleware, not a route of the API.
      const matched = req.route as { path?: unknown; _methods(): string[] } | undefined;
      const route = matched && typeof matched.path === 'string' && !isCatchAllRoute(matched) ? `${req.baseUrl}${matched.path}` : 'unmatched';
      const method = METHODS.has(req.method) ? req.method : 'other';
      requests.inc({ method, route, status: String(res.statusCode) });
      if (!String(res.getHeader('content-type') ?? '').startsWith('text/event-stream')) {
        requestDuration.observe({ method, route }, (performance.now() - started) / 1000);
      }
    });
    next();
  },
};
