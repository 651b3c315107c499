import { Counter } from 'prom-client';
import { createServiceRegistry, MetricsEndpoint } from './metrics-endpoint';

describe('createServiceRegistry', () => {
  it('labels the process metrics with the service and exports no gauge named *_total', async () => {
    const text = await createServiceRegistry('janitor').metrics();
    expect(text).toMatch(/^process_cpu_seconds_total\{service="janitor"\} /m);
    expect(text).toMatch(/^nodejs_active_handles\{type="[A-Za-z]+",service="janitor"\} /m);
    expect(text.match(/^# TYPE \S+_total (gauge|histogram|summary)$/gm)).toBeNull();
  });
});

describe('MetricsEndpoint', () => {
  it('serves the registry on /metrics only, GET or HEAD, and names METRICS_PORT when the port is taken', async () => {
    const registry = createServiceRegistry('runner');
    new Counter({ name: 'flashpods_test_things_total', help: 'things', registers: [registry] }).inc(3);
    const endpoint = await MetricsEndpoint.listen(registry, '127.0.0.1', 0);
    try {
      const base = `http://127.0.0.1:${endpoint.port}`;
      const ok = await fetch(`${base}/metrics`);
      expect([ok.status, ok.headers.get('content-type')]).toEqual([200, registry.contentType]);
      expect(await ok.text()).toMatch(/^flashpods_test_things_total 3$/m);
      expect((await fetch(`${base}/metrics?x=1`)).status).toBe(200);
      expect((await fetch(`${base}/`)).status).toBe(404);
      const post = await fetch(`${base}/metrics`, { method: 'POST' });
      expect([post.status, post.headers.get('allow')]).toEqual([405, 'GET, HEAD']);
      await expect(MetricsEndpoint.listen(registry, '127.0.0.1', endpoint.port)).rejects.toThrow(/METRICS_PORT: cannot listen on 127\.0\.0\.1:\d+ \(EADDRINUSE\)/);
    } finally {
      await endpoint.close();
    }
  });
});
