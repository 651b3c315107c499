import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chownSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
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

/** Sends SIGKILL to `pids` and waits until none of them is alive. */
async function killHard(what: string, pids: number[]): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  await waitFor(`${what} to die`, async () => (pids.some(alive) ? undefined : true), 10000, 20);
}

/**
 * A Redis server of the test's own, so that restarting it disturbs nobody else. Persists with an
 * append-only file, as the compose file's Redis does, so a restart keeps the queues and streams.
 * Two ways to take it away: `down()` is a graceful stop (SHUTDOWN, the AOF written out), `kill()`
 * is `kill -9` (whatever the AOF had not yet synced is lost, as in a crash). `up()` starts it again.
 */
export class PrivateRedis {
  private proc: ChildProcess | undefined;
  private constructor(
    readonly port: number,
    private readonly dir: string,
    private readonly maxmemoryPolicy: string,
  ) {}

  /** `maxmemoryPolicy` other than `noeviction` is for tests of the services' start-up check. */
  static async start(options: { maxmemoryPolicy?: string } = {}): Promise<PrivateRedis> {
    const r = new PrivateRedis(await freePort(), mkdtempSync(join(tmpdir(), 'fp-redis-')), options.maxmemoryPolicy ?? 'noeviction');
    await r.up();
    return r;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** The server's own log (a graceful stop ends with "ready to exit"; a kill leaves no last word). */
  get logFile(): string {
    return join(this.dir, 'redis.log');
  }

  async up(): Promise<void> {
    this.proc = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--dir', this.dir, '--logfile', this.logFile, '--maxmemory-policy', this.maxmemoryPolicy, '--enable-debug-command', 'local'],
      { stdio: 'ignore' },
    );
    await waitFor('private redis', async () => ((await canConnect(this.port)) ? true : undefined), 10000, 50);
  }

  /** A graceful stop, the way an operator's restart would do it (SHUTDOWN writes the AOF). */
  async down(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    execFileSync('redis-cli', ['-p', String(this.port), 'shutdown']);
    await exited;
  }

  /**
   * Freezes the server (SIGSTOP) until `thaw()`: connections stay open and requests are taken by
   * the kernel, but nothing is answered, for as long as the test needs (unlike `DEBUG SLEEP n`,
   * which starts when the command arrives and ends after n seconds whatever the test is doing).
   */
  freeze(): void {
    if (!this.proc?.pid) throw new Error('private redis is not running');
    process.kill(this.proc.pid, 'SIGSTOP');
  }

  thaw(): void {
    if (this.proc?.pid && this.proc.exitCode === null && this.proc.signalCode === null) process.kill(this.proc.pid, 'SIGCONT');
  }

  /** A real kill: SIGKILL to the server, no chance to write anything out. */
  async kill(): Promise<void> {
    const proc = this.proc;
    if (!proc?.pid || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    await killHard('private redis', [proc.pid]);
    await exited;
  }

  async stop(): Promise<void> {
    await this.down().catch(() => this.kill());
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * A PostgreSQL cluster of the test's own (initdb as the postgres user), to be restarted at will:
 * `down()` is a graceful stop (`pg_ctl stop -m fast`: sessions closed, a checkpoint written),
 * `kill()` is `kill -9` of the postmaster and every backend (the next `up()` runs crash recovery).
 */
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

  /** A graceful stop (`pg_ctl stop -m fast`). */
  async down(): Promise<void> {
    this.asPostgres(`${this.bin}/pg_ctl -D ${this.dir}/data -m fast -w stop`);
  }

  /** The server's log: after a kill, the next start says it runs crash recovery. */
  get logFile(): string {
    return join(this.dir, 'log');
  }

  /** The postmaster's pid while the cluster runs (first line of postmaster.pid). */
  get pid(): number | undefined {
    try {
      return Number(readFileSync(join(this.dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]) || undefined;
    } catch {
      return undefined;
    }
  }

  /** A real kill: SIGKILL to the postmaster and all its children at once, as a crash would. */
  async kill(): Promise<void> {
    const pid = this.pid;
    if (!pid) return;
    let listed = '';
    try {
      listed = execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)]).toString();
    } catch {
      // ps exits 1 when there are no children
    }
    const children = listed
      .split('\n')
      .map((l) => Number(l.trim()))
      .filter((n) => n > 0);
    await killHard('private postgres', [pid, ...children]);
  }

  async stop(): Promise<void> {
    await this.down().catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
