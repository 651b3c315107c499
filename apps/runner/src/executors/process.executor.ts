import { JobErrorCode, LogMode, LogStream } from '@flashpods/contracts';
import { spawn } from 'node:child_process';
import { Readable } from 'node:stream';
import { ExecFailure, ExecIO, ExecResult, ExecSpec, Executor, Orphan, Workload } from './executor';

/**
 * Runs `command` as a local child process: for development on a machine with no Docker engine.
 * No isolation and no resource limits: never the default in production.
 */
export class ProcessExecutor implements Executor {
  readonly kind = 'process' as const;
  /** A child dies with its runner, so nothing is ever resumed: the job ends `runner_lost`, never with a silent gap. */
  readonly logMode = LogMode.Durable;

  async run(spec: ExecSpec, io: ExecIO): Promise<ExecResult> {
    if (!spec.command || spec.command.length === 0) {
      throw new ExecFailure({ code: JobErrorCode.RunnerError, message: 'the process executor needs a command' });
    }
    await io.system(`process executor: running locally, image ${spec.image} is ignored`);
    if (io.signal.aborted) throw new ExecFailure({ code: JobErrorCode.RunnerError, message: 'aborted before start' });
    const child = spawn(spec.command[0], spec.command.slice(1), {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...spec.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    // Listened for before anything is awaited: a command that exits at once is still seen.
    const exit = new Promise<number | null>((resolve) => child.once('exit', (code, signal) => resolve(signal ? null : code)));
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
    if (io.signal.aborted) kill();
    const pumped = Promise.all([this.pump(child.stdout!, LogStream.Stdout, io), this.pump(child.stderr!, LogStream.Stderr, io)]);
    // A failing log pipeline stops the workload; the failure is thrown below.
    pumped.catch(kill);
    try {
      await io.started();
      await io.system(`process ${child.pid} started`);
      await pumped;
      return { exitCode: (await exit) ?? 137, oomKilled: false };
    } catch (err) {
      kill();
      throw err;
    } finally {
      io.signal.removeEventListener('abort', kill);
    }
  }

  /**
   * Nothing to find again: a child is not re-attachable (its pipes died with the runner), so a
   * restarted runner ends its jobs `runner_lost`. The child leads its own process group and may
   * outlive the runner (development executor only).
   */
  async findOrphans(): Promise<Orphan[]> {
    return [];
  }

  async list(): Promise<Workload[]> {
    return [];
  }

  async resume(): Promise<ExecResult> {
    throw new ExecFailure({ code: JobErrorCode.RunnerLost, message: 'the process executor cannot re-attach' });
  }

  async discard(): Promise<void> {}

  async remove(): Promise<void> {}

  /** Reads one pipe to its end; awaiting each hand-off is the backpressure. */
  private async pump(stream: Readable, tag: LogStream.Stdout | LogStream.Stderr, io: ExecIO): Promise<void> {
    for await (const chunk of stream) await io.output(tag, chunk as Buffer);
  }
}
