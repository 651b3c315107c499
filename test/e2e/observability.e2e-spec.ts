import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { MIGRATIONS } from '@flashpods/database';
import { promtoolCheck, sample, scrape, total } from '../support/metrics';
import { freePort, Stack } from '../support/stack';
import { TEST_IMAGE, waitFor } from '../support/test-env';

const WORKERS = ['runner', 'persister', 'janitor'] as const;
const HEARTBEAT_MS = 300;
const MAX_UNPERSISTED = 8;

describe('four services started at once on an empty database; metrics; SSE heartbeats', () => {
  let stack: Stack;
  /** Each worker's /metrics URL (distinct ports: several runners may share a machine). */
  const metricsUrl: Record<string, string> = {};
  const metricsOf = (service: string) => scrape(metricsUrl[service]);
  const submit = async (command: string[]) => (await stack.json('POST', '/jobs', { image: TEST_IMAGE, command })).body.id as string;
  /** The API's /metrics once `flashpods_jobs` has been read from Postgres after `since` (it is refreshed every second here). */
  const apiMetricsAfter = async (since: number) =>
    waitFor(
      'flashpods_jobs to be refreshed',
      async () => {
        const text = await scrape(`${stack.baseUrl}/metrics`);
        return sample(text, 'flashpods_jobs_refreshed_timestamp_seconds') > since / 1000 ? text : undefined;
      },
      10000,
      100,
    );
  /** The runner's /metrics once every job it started has been counted as finished. */
  const settledRunnerMetrics = async () =>
    waitFor(
      'the runner to count every job it started as finished',
      async () => {
        const text = await metricsOf('runner');
        const started = sample(text, 'flashpods_runner_jobs_started_total') + sample(text, 'flashpods_runner_jobs_resumed_total');
        return total(text, 'flashpods_runner_jobs_finished_total') === started ? text : undefined;
      },
      10000,
      50,
    );

  beforeAll(async () => {
    const ports = { runner: await freePort(), persister: await freePort(), janitor: await freePort() };
    for (const [service, port] of Object.entries(ports)) metricsUrl[service] = `http://127.0.0.1:${port}/metrics`;
    // Stack.start spawns api, runner, persister and janitor together on a fresh database: each
    // migrates at start, so they race for the migration lock.
    stack = await Stack.start(
      ['api', 'runner', 'persister', 'janitor'],
      {
        API_SSE_HEARTBEAT_MS: String(HEARTBEAT_MS),
        METRICS_HOST: '127.0.0.1',
        METRICS_REFRESH_SECONDS: '1',
        LIVENESS_INTERVAL_SECONDS: '1',
        STREAM_MAX_UNPERSISTED_ENTRIES: String(MAX_UNPERSISTED),
      },
      {
        runner: { METRICS_PORT: String(ports.runner) },
        persister: { METRICS_PORT: String(ports.persister) },
        janitor: { METRICS_PORT: String(ports.janitor) },
      },
    );
    await waitFor(
      'every worker service to say it is ready',
      async () => (WORKERS.every((w) => stack.logsOf(w).includes(`${w} ready`)) ? true : undefined),
      30000,
      100,
    );
  }, 90000);
  afterAll(() => stack?.stop());

  it('applies the schema once, with no error, whichever service wins the race', async () => {
    for (const s of ['api', ...WORKERS]) expect([s, stack.pidOf(s) !== undefined]).toEqual([s, true]);
    const ds = await new DataSource({ type: 'postgres', url: stack.world.databaseUrl }).initialize();
    try {
      const rows: { name: string }[] = await ds.query('SELECT name FROM migrations ORDER BY id');
      expect(rows.map((r) => r.name)).toEqual(MIGRATIONS.map((m) => m.name));
    } finally {
      await ds.destroy();
    }
    // Exactly one service applied them all; the others found nothing to do.
    const appliers = ['api', ...WORKERS].filter((s) => stack.logsOf(s).includes('applied migrations'));
    expect(appliers).toHaveLength(1);
    for (const s of ['api', ...WORKERS]) expect([s, /QueryFailedError|already exists|duplicate key/.test(stack.logsOf(s))]).toEqual([s, false]);
  });

  it('/metrics job counts move by exactly the jobs that finished: completed +2, failed +1, none left pending', async () => {
    const run = submit;
    // One job first, so the counts start from a value that is not zero.
    expect((await stack.waitTerminal(await run(['echo', 'first']))).job.status).toBe('completed');
    // The counts come from Postgres on an interval, never per scrape: read them once refreshed.
    const before = await apiMetricsAfter(Date.now());
    const ids = [await run(['echo', 'one']), await run(['sh', '-c', 'exit 4']), await run(['echo', 'two'])];
    const statuses = [];
    for (const id of ids) statuses.push((await stack.waitTerminal(id)).job.status);
    expect(statuses).toEqual(['completed', 'failed', 'completed']);
    const after = await apiMetricsAfter(Date.now());
    const delta = (series: string) => sample(after, series) - sample(before, series);
    expect({
      completedBefore: sample(before, 'flashpods_jobs{status="completed"}'),
      completed: delta('flashpods_jobs{status="completed"}'),
      failed: delta('flashpods_jobs{status="failed"}'),
      pending: sample(after, 'flashpods_jobs{status="pending"}'),
      running: sample(after, 'flashpods_jobs{status="running"}'),
      submitted: delta('flashpods_api_jobs_submitted_total'),
    }).toEqual({ completedBefore: 1, completed: 2, failed: 1, pending: 0, running: 0, submitted: 3 });
  });

  it('runner and persister figures move by exactly what three jobs did: jobs, lines and bytes printed, lines and bytes stored, chunks', async () => {
    const runner0 = await settledRunnerMetrics();
    const persister0 = await metricsOf('persister');
    const ids = [
      // stdout: 5 lines of 6 bytes; stderr: 4 + 5 bytes.
      await submit(['sh', '-c', 'for i in 1 2 3 4 5; do echo line-$i; done; echo oops >&2; echo again >&2']),
      // stdout: 11 bytes; then a failure.
      await submit(['sh', '-c', 'echo before-exit; exit 4']),
      // stdout: a last line with no newline, 10 bytes.
      await submit(['sh', '-c', 'printf no-newline']),
    ];
    const jobs = [];
    for (const id of ids) jobs.push((await stack.waitTerminal(id)).job);
    expect(jobs.map((j) => j.status)).toEqual(['completed', 'failed', 'completed']);
    const runner1 = await settledRunnerMetrics();
    const persister1 = await metricsOf('persister');
    const r = (series: string) => sample(runner1, series) - sample(runner0, series);
    const p = (series: string) => sample(persister1, series) - sample(persister0, series);
    const stored = { lines: jobs.reduce((n, j) => n + j.log.lines, 0), bytes: jobs.reduce((n, j) => n + j.log.bytes, 0) };
    expect({
      started: r('flashpods_runner_jobs_started_total'),
      completed: r('flashpods_runner_jobs_finished_total{status="completed",error_code="none"}'),
      failed: r('flashpods_runner_jobs_finished_total{status="failed",error_code="nonzero_exit"}'),
      durationsCompleted: r('flashpods_runner_job_duration_seconds_count{status="completed"}'),
      durationsFailed: r('flashpods_runner_job_duration_seconds_count{status="failed"}'),
      queueWaits: r('flashpods_runner_job_queue_wait_seconds_count'),
      stdoutLines: r('flashpods_runner_captured_lines_total{stream="stdout"}'),
      stdoutBytes: r('flashpods_runner_captured_bytes_total{stream="stdout"}'),
      stderrLines: r('flashpods_runner_captured_lines_total{stream="stderr"}'),
      stderrBytes: r('flashpods_runner_captured_bytes_total{stream="stderr"}'),
      running: sample(runner1, 'flashpods_runner_jobs_running'),
    }).toEqual({
      started: 3, completed: 2, failed: 1, durationsCompleted: 2, durationsFailed: 1, queueWaits: 3,
      stdoutLines: 7, stdoutBytes: 5 * 6 + 11 + 10, stderrLines: 2, stderrBytes: 4 + 5, running: 0,
    });
    // What the runner shipped is what the persister wrote, which is what the jobs' logs hold
    // (their lifecycle lines included).
    expect({
      shippedLines: r('flashpods_runner_shipped_lines_total'),
      writtenLines: p('flashpods_persister_written_lines_total'),
      writtenBytes: p('flashpods_persister_written_bytes_total'),
      writtenChunks: p('flashpods_persister_written_chunks_total'),
      taken: p('flashpods_persister_jobs_taken_total'),
    }).toEqual({
      shippedLines: stored.lines,
      writtenLines: stored.lines,
      writtenBytes: stored.bytes,
      writtenChunks: r('flashpods_runner_shipped_chunks_total'),
      taken: 3,
    });
    expect(stored.lines).toBeGreaterThan(7 + 2);
  });

  it('counts live log streams (SSE clients) while they are open', async () => {
    const id = await submit(['sh', '-c', 'echo up; sleep 30']);
    await waitFor('the job to run', async () => ((await stack.json('GET', `/jobs/${id}`)).body.status === 'running' ? true : undefined), 30000, 50);
    const gauge = async () => sample(await scrape(`${stack.baseUrl}/metrics`), 'flashpods_api_sse_clients');
    const opened0 = sample(await scrape(`${stack.baseUrl}/metrics`), 'flashpods_api_sse_streams_total');
    expect(await gauge()).toBe(0);
    const controllers = [new AbortController(), new AbortController()];
    for (const c of controllers) {
      const res = await fetch(`${stack.baseUrl}/jobs/${id}/logs/stream`, {
        headers: { authorization: `Bearer ${stack.token}`, accept: 'text/event-stream' },
        signal: c.signal,
      });
      expect(res.status).toBe(200);
    }
    expect(await gauge()).toBe(2);
    expect(sample(await scrape(`${stack.baseUrl}/metrics`), 'flashpods_api_sse_streams_total') - opened0).toBe(2);
    controllers[0].abort();
    await waitFor('one stream to be counted as closed', async () => ((await gauge()) === 1 ? true : undefined), 5000, 50);
    controllers[1].abort();
    await waitFor('both streams to be counted as closed', async () => ((await gauge()) === 0 ? true : undefined), 5000, 50);
    expect((await stack.json('POST', `/jobs/${id}/cancel`)).status).toBe(202);
    expect((await stack.waitTerminal(id)).job.status).toBe('cancelled');
  });

  it('janitor: every sweep run is counted as a counter, with its duration', async () => {
    const runs = (text: string) => sample(text, 'flashpods_janitor_sweeps_total{sweep="liveness-sweep",result="done"}');
    const first = await metricsOf('janitor');
    // The liveness sweep runs every second here.
    const later = await waitFor('two more liveness sweeps', async () => {
      const text = await metricsOf('janitor');
      return runs(text) >= runs(first) + 2 ? text : undefined;
    }, 15000, 200);
    expect(later).toMatch(/^# TYPE flashpods_janitor_sweeps_total counter$/m);
    expect(later).toMatch(/^# TYPE flashpods_janitor_deleted_bytes_total counter$/m);
    // Duration observations and runs move together (a run is observed once it is done).
    expect(sample(later, 'flashpods_janitor_sweep_duration_seconds_count{sweep="liveness-sweep"}')).toBe(runs(later));
    expect(sample(later, 'flashpods_janitor_sweeps_total{sweep="liveness-sweep",result="failed"}')).toBe(0);
  });

  it('every service’s /metrics passes `promtool check metrics`, process metrics labelled by service', async () => {
    for (const service of ['api', ...WORKERS]) {
      const text = service === 'api' ? await scrape(`${stack.baseUrl}/metrics`) : await metricsOf(service);
      expect([service, promtoolCheck(text)]).toEqual([service, { status: 0, output: '' }]);
      expect([service, sample(text, `process_resident_memory_bytes{service="${service}"}`) > 0]).toEqual([service, true]);
      expect([service, text.includes(`nodejs_eventloop_lag_seconds{service="${service}"}`)]).toEqual([service, true]);
    }
  });

  it('the Grafana dashboard in docs/ parses (promtool check rules) and reads only metrics the services export', async () => {
    const exported = new Set<string>();
    for (const text of [await scrape(`${stack.baseUrl}/metrics`), ...(await Promise.all(WORKERS.map((w) => metricsOf(w))))]) {
      for (const m of text.matchAll(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{| )/gm)) exported.add(m[1]);
    }
    const dashboard = JSON.parse(readFileSync(join(__dirname, '../../docs/grafana-dashboard.json'), 'utf8'));
    const exprs: string[] = dashboard.panels.flatMap((p: { targets?: { expr: string }[] }) => (p.targets ?? []).map((t) => t.expr));
    expect(exprs.length).toBeGreaterThan(20);
    const used = new Set(exprs.flatMap((e) => [...e.matchAll(/\b((?:flashpods|process|nodejs)_[a-z0-9_]+)/g)].map((m) => m[1])));
    expect([...used].filter((name) => !exported.has(name))).toEqual([]);
    // Every query as a recording rule, which promtool parses as PromQL.
    const dir = mkdtempSync(join(tmpdir(), 'fp-dashboard-'));
    try {
      const rules = exprs.map((e, i) => `      - record: dashboard:query_${i}\n        expr: ${JSON.stringify(e.replaceAll('$__rate_interval', '5m'))}`);
      writeFileSync(join(dir, 'rules.yml'), `groups:\n  - name: dashboard\n    rules:\n${rules.join('\n')}\n`);
      const check = spawnSync('promtool', ['check', 'rules', join(dir, 'rules.yml')], { encoding: 'utf8' });
      expect([check.status, check.stderr]).toEqual([0, '']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('service logs are JSON lines naming their service, and the runner and job where they apply', async () => {
    const ids = [await submit(['echo', 'logged'])];
    await stack.waitTerminal(ids[0]);
    await settledRunnerMetrics();
    for (const service of ['api', ...WORKERS]) {
      const lines = (stack.output.get(service) ?? []).join('').split('\n').filter((l) => l.trim() !== '');
      expect([service, lines.length > 0]).toEqual([service, true]);
      for (const line of lines) {
        let entry: Record<string, unknown>;
        try {
          entry = JSON.parse(line);
        } catch {
          throw new Error(`${service} wrote a line that is not JSON: ${line}`);
        }
        expect([line, entry.service, typeof entry.msg, typeof entry.time, ['fatal', 'error', 'warn', 'info', 'debug', 'trace'].includes(entry.level as string)]).toEqual([
          line, service, 'string', 'string', true,
        ]);
        if (service === 'runner') expect([line, entry.runner_id]).toEqual([line, `runner-${stack.world.id}`]);
        const named = /\bjob ([0-9a-f-]{36})\b/.exec(entry.msg as string)?.[1];
        if (named) expect([line, entry.job_id]).toEqual([line, named]);
      }
    }
    // The job's own lines in the runner's and persister's logs carry its id as a field.
    for (const service of ['runner', 'persister']) {
      const entries = (stack.output.get(service) ?? []).join('').split('\n').filter(Boolean).map((l) => JSON.parse(l));
      expect([service, entries.some((e) => e.job_id === ids[0])]).toEqual([service, true]);
    }
  });

  it('sends a heartbeat comment on an idle log stream every API_SSE_HEARTBEAT_MS', async () => {
    const job = (await stack.json('POST', '/jobs', { image: TEST_IMAGE, command: ['sh', '-c', 'echo up; sleep 5; echo done'] })).body;
    await waitFor('the job to run', async () => ((await stack.json('GET', `/jobs/${job.id}`)).body.status === 'running' ? true : undefined), 30000, 50);
    const controller = new AbortController();
    const res = await fetch(`${stack.baseUrl}/jobs/${job.id}/logs/stream`, {
      headers: { authorization: `Bearer ${stack.token}`, accept: 'text/event-stream' },
      signal: controller.signal,
    });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    const pings: number[] = [];
    let text = '';
    const window = 2000;
    const started = Date.now();
    try {
      while (Date.now() - started < window) {
        const { value, done } = await reader.read();
        if (done) break;
        const chunk = decoder.decode(value, { stream: true });
        text += chunk;
        for (const _ of chunk.matchAll(/^: ping$/gm)) pings.push(Date.now() - started);
      }
    } finally {
      controller.abort();
    }
    // The job is asleep: the line `up` came, then only heartbeats, about every 300 ms.
    expect(text).toContain('"line":"up"');
    expect(pings.length).toBeGreaterThanOrEqual(Math.floor(window / HEARTBEAT_MS) - 2);
    expect(pings.length).toBeLessThanOrEqual(Math.ceil(window / HEARTBEAT_MS) + 1);
    const gaps = pings.slice(1).map((t, i) => t - pings[i]);
    for (const g of gaps) expect(g).toBeLessThan(3 * HEARTBEAT_MS);
    await stack.waitTerminal(job.id);
  });

  // Last: it stops the persister and goes on with a second one.
  it('backpressure: with the persister stopped the runner waits on a full stream, and no line is lost or counted twice', async () => {
    const runner0 = await settledRunnerMetrics();
    await stack.stopService('persister');
    const LINES = 50000;
    const id = await submit(['sh', '-c', `yes 0123456789abcdef | head -n ${LINES}`]);
    // (Its `running` status waits on the stream too: the persister is what writes it to Postgres.)
    // The stream fills to STREAM_MAX_UNPERSISTED_ENTRIES and the runner stops reading; it stays so
    // until a persister is back.
    await waitFor(
      'the runner to stop reading',
      async () => {
        const a = sample(await metricsOf('runner'), 'flashpods_runner_captured_lines_total{stream="stdout"}');
        await new Promise((r) => setTimeout(r, 500));
        const b = sample(await metricsOf('runner'), 'flashpods_runner_captured_lines_total{stream="stdout"}');
        return a === b && b > sample(runner0, 'flashpods_runner_captured_lines_total{stream="stdout"}') ? true : undefined;
      },
      30000,
      0,
    );
    const stalled = await metricsOf('runner');
    expect(sample(stalled, 'flashpods_runner_captured_lines_total{stream="stdout"}') - sample(runner0, 'flashpods_runner_captured_lines_total{stream="stdout"}')).toBeLessThan(LINES);
    const port = await freePort();
    metricsUrl['persister-2'] = `http://127.0.0.1:${port}/metrics`;
    stack.startService('persister', 'persister-2', { METRICS_PORT: String(port) });
    const { job } = await stack.waitTerminal(id);
    expect(job.status).toBe('completed');
    const runner1 = await settledRunnerMetrics();
    const r = (series: string) => sample(runner1, series) - sample(runner0, series);
    expect({
      stdoutLines: r('flashpods_runner_captured_lines_total{stream="stdout"}'),
      stdoutBytes: r('flashpods_runner_captured_bytes_total{stream="stdout"}'),
      fullWaits: r('flashpods_runner_stream_full_waits_total') >= 1,
      // The runner waited at least while we watched it stalled (500 ms) and the new persister started.
      fullWaitSeconds: r('flashpods_runner_stream_full_wait_seconds_total') >= 0.5,
      backpressureWaits: r('flashpods_runner_backpressure_waits_total') >= 1,
    }).toEqual({ stdoutLines: LINES, stdoutBytes: LINES * 16, fullWaits: true, fullWaitSeconds: true, backpressureWaits: true });
    const persister = await waitFor(
      'the second persister to let go of the finished job',
      async () => {
        const text = await metricsOf('persister-2');
        return sample(text, 'flashpods_persister_jobs_owned') === 0 ? text : undefined;
      },
      10000,
      100,
    );
    expect({
      taken: sample(persister, 'flashpods_persister_jobs_taken_total'),
      lines: sample(persister, 'flashpods_persister_written_lines_total'),
      bytes: sample(persister, 'flashpods_persister_written_bytes_total'),
      lag: sample(persister, 'flashpods_persister_lag_entries'),
      unclaimed: sample(persister, 'flashpods_persister_unclaimed_jobs'),
    }).toEqual({ taken: 1, lines: job.log.lines, bytes: job.log.bytes, lag: 0, unclaimed: 0 });
    expect(job.log.lines).toBeGreaterThan(LINES);
  }, 120000);
});
