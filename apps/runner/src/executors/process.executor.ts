import { JobErrorCode, LogStream } from '@flashpods/contracts';
import { spawn } from 'node:child_process';
import { Readable } from 'node:stream';
import { ExecFailure, ExecIO, ExecResult, ExecSpec, Executor, Orphan } from './executor';

/**
 * Runs `command` as a local child process: for development on a machine with no Docker engine.
 * No isolation and no resource limits: never the default in production.
 */
export class ProcessExecutor implements Executor {
  readonly kind = 'process' as const;

  async run(spec: ExecSpec, io: ExecIO): Promise<ExecResult> {
    if (!spec.command || spec.command.length === 0) {
      throw new ExecFailure({ code: JobErrorCode.RunnerError, message: 'the process executor needs a command' });
    }
    await io.system(`process executor: running locally, image ${spec.image} is ignored`);
    const child = spawn(spec.command[0], spec.command.slice(1), {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...spec.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const spawned = new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    try {
      await spawned;
    } catch (err) {
      throw new ExecFailure({ code: JobErrorCode.RunnerError, message: `cannot start: ${(err as Error).message}` });
    }
    const kill = () => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    io.signal.addEventListener('abort', kill, { once: true });
    await io.started();
    await io.system(`process ${child.pid} started`);
    try {
      const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      await Promise.all([
        this.pump(child.stdout!, LogStream.Stdout, io),
        this.pump(child.stderr!, LogStream.Stderr, io),
      ]);
      return { exitCode: (await exit) ?? 137, oomKilled: false };
    } finally {
      io.signal.removeEventListener('abort', kill);
    }
  }

  /** Child processes die with their runner's process group: there is nothing to find again. */
  async findOrphans(): Promise<Orphan[]> {
    return [];
  }

  async resume(): Promise<ExecResult> {
    throw new ExecFailure({ code: JobErrorCode.RunnerLost, message: 'the process executor cannot re-attach' });
  }

  async discard(): Promise<void> {}

  private pump(stream: Readable, tag: LogStream.Stdout | LogStream.Stderr, io: ExecIO): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      stream.on('data', (chunk: Buffer) => {
        const wait = io.output(tag, chunk);
        if (wait) {
          stream.pause();
          wait.then(() => stream.resume(), reject);
        }
      });
      stream.once('end', resolve);
      stream.once('error', reject);
    });
  }
}
