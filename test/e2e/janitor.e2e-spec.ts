import { sample, scrape } from '../support/metrics';
import { freePort, Stack } from '../support/stack';
import { TEST_IMAGE, waitFor } from '../support/test-env';

describe('janitor (real services)', () => {
  let stack: Stack;
  let janitorMetrics: string;
  beforeAll(async () => {
    const port = await freePort();
    janitorMetrics = `http://127.0.0.1:${port}/metrics`;
    stack = await Stack.start(
      ['api', 'runner', 'persister', 'janitor'],
      { LOG_RETENTION_SECONDS: '3', JANITOR_INTERVAL_SECONDS: '1' },
      { janitor: { METRICS_PORT: String(port), METRICS_HOST: '127.0.0.1' } },
    );
  }, 60000);
  afterAll(() => stack?.stop());

  it('deletes a finished job’s log after its TTL; every log endpoint then answers 410 logs_deleted', async () => {
    const created = await stack.json('POST', '/jobs', { image: TEST_IMAGE, command: ['echo', 'short-lived'] });
    const { job } = await stack.waitTerminal(created.body.id);
    expect(job.status).toBe('completed');
    expect((await stack.json('GET', `/jobs/${job.id}/output`)).status).toBe(200);
    const cleaned = await waitFor(
      'the TTL sweep to clean the job',
      async () => {
        const j = (await stack.json('GET', `/jobs/${job.id}`)).body;
        return j.status === 'cleaned' ? j : undefined;
      },
      20000,
      200,
    );
    expect(Date.parse(cleaned.cleaned_at) - Date.parse(cleaned.finished_at)).toBeGreaterThanOrEqual(3000);
    for (const path of ['output', 'logs', 'logs/stream', 'logs/download']) {
      const r = await stack.json('GET', `/jobs/${job.id}/${path}`);
      expect([path, r.status, r.body.error]).toEqual([path, 410, 'logs_deleted']);
    }
    // The janitor's own metrics: exactly this job, its two files (.log and .idx, 32 bytes per line).
    const metrics = await waitFor(
      'the janitor to count the TTL sweep that cleaned the job',
      async () => {
        const text = await scrape(janitorMetrics);
        return sample(text, 'flashpods_janitor_deleted_jobs_total{sweep="ttl-sweep"}') > 0 ? text : undefined;
      },
      10000,
      100,
    );
    expect({
      jobs: sample(metrics, 'flashpods_janitor_deleted_jobs_total{sweep="ttl-sweep"}'),
      files: sample(metrics, 'flashpods_janitor_deleted_files_total{sweep="ttl-sweep"}'),
      bytes: sample(metrics, 'flashpods_janitor_deleted_bytes_total{sweep="ttl-sweep"}'),
    }).toEqual({ jobs: 1, files: 2, bytes: job.log.bytes + 32 * job.log.lines });
    expect(metrics).toMatch(/^# TYPE flashpods_janitor_deleted_jobs_total counter$/m);
    const board = await fetch(`${stack.baseUrl}/admin/queues/api/queues`, {
      headers: { authorization: `Basic ${Buffer.from(`admin:${stack.token}`).toString('base64')}` },
    });
    expect(board.status).toBe(200);
    const queues = ((await board.json()) as { queues: { name: string }[] }).queues.map((q: { name: string }) => q.name);
    expect(queues).toEqual(expect.arrayContaining(['jobs', 'janitor']));
  });
});
