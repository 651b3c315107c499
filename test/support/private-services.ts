import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from './test-env';

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

const canConnect = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = require('node:net').connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });

/**
 * A Redis server of the test's own, so that restarting it disturbs nobody else. Persists with an
 * append-only file, as the compose file's Redis does, so a restart keeps the queues and streams.
 */
export class PrivateRedis {
  private proc: ChildProcess | undefined;
  private constructor(
    readonly port: number,
    private readonly dir: string,
  ) {}

  static async start(): Promise<PrivateRedis> {
    const r = new PrivateRedis(await freePort(), mkdtempSync(join(tmpdir(), 'fp-redis-')));
    await r.up();
    return r;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async up(): Promise<void> {
    this.proc = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--dir', this.dir, '--maxmemory-policy', 'noeviction'],
      { stdio: 'ignore' },
    );
    await waitFor('private redis', async () => ((await canConnect(this.port)) ? true : undefined), 10000, 50);
  }

  /** Stops the server the way an operator's restart would (SHUTDOWN writes the AOF). */
  async down(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    execFileSync('redis-cli', ['-p', String(this.port), 'shutdown']);
    await exited;
  }

  async stop(): Promise<void> {
    await this.down().catch(() => this.proc?.kill('SIGKILL'));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A PostgreSQL cluster of the test's own (initdb as the postgres user), to be restarted at will. */
export class PrivatePostgres {
  private constructor(
    readonly port: number,
    private readonly dir: string,
    private readonly bin: string,
  ) {}

  static async start(): Promise<PrivatePostgres> {
    const version = execFileSync('ls', ['/usr/lib/postgresql']).toString().trim().split('\n')[0];
    const bin = `/usr/lib/postgresql/${version}/bin`;
    const dir = mkdtempSync(join(tmpdir(), 'fp-pg-'));
    chownSync(dir, Number(execFileSync('id', ['-u', 'postgres']).toString()), Number(execFileSync('id', ['-g', 'postgres']).toString()));
    const pg = new PrivatePostgres(await freePort(), dir, bin);
    pg.asPostgres(`${bin}/initdb -D ${dir}/data -U postgres --auth=trust -E UTF8 >/dev/null`);
    await pg.up();
    return pg;
  }

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/flashpods`;
  }

  private asPostgres(command: string): void {
    execFileSync('su', ['postgres', '-s', '/bin/sh', '-c', command], { stdio: 'ignore' });
  }

  async up(): Promise<void> {
    this.asPostgres(
      `${this.bin}/pg_ctl -D ${this.dir}/data -l ${this.dir}/log -w -o "-p ${this.port} -c listen_addresses=127.0.0.1 -k ${this.dir}" start`,
    );
  }

  async down(): Promise<void> {
    this.asPostgres(`${this.bin}/pg_ctl -D ${this.dir}/data -m fast -w stop`);
  }

  async stop(): Promise<void> {
    await this.down().catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
