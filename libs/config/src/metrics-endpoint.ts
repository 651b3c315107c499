import { createServer, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Registry } from 'prom-client';

/**
 * prom-client's defaults that are gauges named `*_total`, which `promtool check metrics` refuses
 * (a `_total` suffix promises a counter). The same figures stay available per type in
 * `nodejs_active_handles{type}`, `nodejs_active_requests{type}` and `nodejs_active_resources{type}`.
 */
const GAUGES_NAMED_TOTAL = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/**
 * A service's metric registry, with the process metrics (CPU, memory, event loop lag, GC, handles)
 * labelled `service`, so a dashboard can tell the four services apart on one machine.
 */
export function createServiceRegistry(service: string): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, labels: { service } });
  for (const name of GAUGES_NAMED_TOTAL) registry.removeSingleMetric(name);
  return registry;
}

/** `/metrics` of a service with no HTTP port of its own (runner, persister, janitor). */
export class MetricsEndpoint {
  private constructor(private readonly server: Server) {}

  /** Listens on `host:port`; rejects, naming METRICS_PORT, when the port is taken. */
  static listen(registry: Registry, host: string, port: number): Promise<MetricsEndpoint> {
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: metrics are at /metrics\n');
        return;
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
        return;
      }
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(req.method === 'HEAD' ? undefined : text),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`collecting metrics failed: ${err.message}\n`),
      );
    });
    // A scraper that keeps its connection open must not hold the process up at shutdown.
    server.keepAliveTimeout = 5000;
    return new Promise((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) =>
        reject(new Error(`METRICS_PORT: cannot listen on ${host}:${port} (${err.code ?? err.message})`)),
      );
      server.listen(port, host, () => resolve(new MetricsEndpoint(server)));
    });
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * Runs `refresh` now and every `seconds` (timer unref'd, errors counted as a stale refresh rather
 * than thrown): for gauges whose value costs a query, so a scrape never runs one.
 */
export function refreshEvery(seconds: number, refresh: () => Promise<void>, onError: (err: Error) => void): () => void {
  let running = false;
  const tick = () => {
    if (running) return;
    running = true;
    refresh()
      .catch(onError)
      .finally(() => (running = false));
  };
  tick();
  const timer = setInterval(tick, seconds * 1000);
  timer.unref();
  return () => clearInterval(timer);
}
