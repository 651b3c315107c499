import Docker from 'dockerode';
import { ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { serviceNodeFlags } from '@flashpods/config';
import { ContractViolation, OpenApiContract } from './openapi-contract';
import { createTestWorld, FatalProbeError, TestWorld, waitFor } from './test-env';

export type ServiceName = 'api' | 'runner' | 'persister' | 'janitor';

/** The workspace root, wherever this file runs from (sources under jest, or compiled for the bench). */
const ROOT = (() => {
  let dir = __dirname;
  while (!existsSync(join(dir, 'nx.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('workspace root (nx.json) not found');
    dir = up;
  }
  return dir;
})();

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/**
 * The built services running as real processes, as `npm run start:<service>` would run them,
 * in a world of their own (database, Redis prefix, log directory, port).
 */
export class Stack {
  private readonly procs = new Map<string, ChildProcess>();
  readonly output = new Map<string, string[]>();
  /**
   * The API's own OpenAPI document (`/docs-json`): every answer `request` and `json` receive is
   * checked against it, and a mismatch or an undocumented status fails the call.
   */
  contract?: OpenApiContract;
  /** Every mismatch seen, so that `stop` fails the file even when a test swallowed the error. */
  readonly contractViolations: string[] = [];

  private constructor(
    readonly world: TestWorld,
    readonly baseUrl: string,
  ) {}

  /** `perService`: extra environment of one service (e.g. its own METRICS_PORT). */
  static async start(
    services: ServiceName[] = ['api', 'runner', 'persister'],
    env: Record<string, string> = {},
    perService: Partial<Record<ServiceName, Record<string, string>>> = {},
  ): Promise<Stack> {
    const port = await freePort();
    // Tests poll hard; only a test about rate limiting sets a limit it can reach.
    const world = await createTestWorld({ API_PORT: String(port), API_HOST: '127.0.0.1', API_RATE_LIMIT_PER_MINUTE: '100000000', ...env });
    const stack = new Stack(world, `http://127.0.0.1:${port}`);
    for (const s of services) stack.startService(s, s, perService[s]);
    try {
      await stack.waitReady();
      stack.contract = await OpenApiContract.fetch(stack.baseUrl);
    } catch (err) {
      await stack.stop().catch(() => undefined);
      throw err;
    }
    return stack;
  }

  get token(): string {
    return this.world.env.FLASHPODS_ADMIN_TOKEN;
  }

  /** Starts one service; `name` may be e.g. `runner-2` with its own extra environment. */
  startService(service: ServiceName, name: string = service, env: Record<string, string> = {}): ChildProcess {
    // FLASHPODS_SERVICE_NODE_ARGS (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`): for profiling a bench run.
    const nodeArgs = process.env.FLASHPODS_SERVICE_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
    const proc = spawn(process.execPath, [...serviceNodeFlags(service), ...nodeArgs, join(ROOT, 'apps', service, 'dist', 'main.js')], {
      env: { ...process.env, ...this.world.env, RUNNER_ID: `${name}-${this.world.id}`, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: string[] = [];
    this.output.set(name, lines);
    const keep = (b: Buffer) => {
      lines.push(b.toString());
      if (lines.length > 2000) lines.splice(0, lines.length - 2000);
    };
    proc.stdout!.on('data', keep);
    proc.stderr!.on('data', keep);
    this.procs.set(name, proc);
    return proc;
  }

  pidOf(name: string): number | undefined {
    return this.procs.get(name)?.pid;
  }

  /** Sends a signal and waits for the process to exit. */
  async stopService(name: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const proc = this.procs.get(name);
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill(signal);
    await exited;
    this.procs.delete(name);
  }

  async waitReady(): Promise<void> {
    await waitFor(
      'the API to be ready',
      async () => {
        for (const [name, p] of this.procs) {
          if (p.exitCode !== null) throw new FatalProbeError(`${name} exited with ${p.exitCode}: ${this.logsOf(name)}`);
        }
        return (await fetch(`${this.baseUrl}/ready`).catch(() => undefined))?.ok ? true : undefined;
      },
      30000,
      200,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n--- api output ---\n${(this.output.get('api') ?? []).join('').slice(-4000)}`);
    });
  }

  async request(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
    const url = `${this.baseUrl}${path}`;
    const res = await fetch(url, {
      method,
      headers: {
        authorization: `Bearer ${this.token}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    await this.contract?.check(method, url, res).catch((err: unknown) => {
      if (err instanceof ContractViolation) this.contractViolations.push(err.message);
      throw err;
    });
    return res;
  }

  async json<T = any>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const res = await this.request(method, path, body);
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  }

  /** Polls the job until it is terminal; returns it, and the statuses seen on the way. */
  async waitTerminal(id: string, timeoutMs = 60000): Promise<{ job: any; seen: string[] }> {
    const seen: string[] = [];
    const job = await waitFor(
      `job ${id} to finish`,
      async () => {
        const { status, body } = await this.json('GET', `/jobs/${id}`);
        // 503 means a backend is reconnecting: ask again. Anything else but 200 is an answer waiting
        // will not change (a 429 once hid a whole minute here).
        if (status === 503) return undefined;
        if (status !== 200) throw new FatalProbeError(`GET /jobs/${id} answered ${status}: ${JSON.stringify(body)}`);
        if (seen[seen.length - 1] !== body.status) seen.push(body.status);
        return ['completed', 'failed', 'timed_out', 'cancelled', 'cleaned'].includes(body.status) ? body : undefined;
      },
      timeoutMs,
      50,
    );
    return { job, seen };
  }

  /** The captured output of a service, for failure messages. */
  logsOf(name: string): string {
    return (this.output.get(name) ?? []).join('').slice(-6000);
  }

  /**
   * The stack's job containers still there once its runners are gone: a test that failed while a
   * job waited for it (a gate never opened) would otherwise leave it running through the rest of
   * the suite. No Docker engine, nothing to remove.
   */
  private async removeContainers(): Promise<void> {
    const docker = new Docker();
    const left = await docker
      .listContainers({ all: true, filters: { label: [`flashpods.installation=${this.world.redisPrefix}`] } })
      .catch(() => []);
    await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
  }

  async stop(): Promise<void> {
    const dead = [...this.procs.entries()].filter(([, p]) => p.exitCode !== null || p.signalCode !== null);
    for (const [name, p] of dead) console.error(`${name} exited early (${p.exitCode ?? p.signalCode}):\n${this.logsOf(name)}`);
    await Promise.all([...this.procs.keys()].map((name) => this.stopService(name, 'SIGTERM')));
    await this.removeContainers();
    await this.world.dispose();
    if (this.contractViolations.length) {
      throw new Error(`answers that do not match the OpenAPI document:\n${this.contractViolations.join('\n')}`);
    }
  }
}
