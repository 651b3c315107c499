import { JobErrorCode, LogStream } from '@flashpods/contracts';
import Docker from 'dockerode';
import { Readable } from 'node:stream';
import { DockerStreamDemuxer } from './docker-stream.demuxer';
import { ExecFailure, ExecIO, ExecResult, ExecSpec, Executor } from './executor';

export const LABEL_JOB_ID = 'flashpods.job_id';
export const LABEL_RUNNER_ID = 'flashpods.runner_id';

/**
 * Runs a job in a Docker container. Output is read through `attach` (opened before `start`, so
 * the first byte is never missed): it is real-time and the fastest path measured here. The
 * container uses the `local` log driver so the daemon keeps its own copy for recovery.
 */
export class DockerExecutor implements Executor {
  readonly kind = 'docker' as const;

  constructor(
    private readonly docker: Docker,
    private readonly pullTimeoutMs: number,
  ) {}

  async run(spec: ExecSpec, io: ExecIO): Promise<ExecResult> {
    await this.ensureImage(spec.image, io);
    const container = await this.docker.createContainer({
      Image: spec.image,
      Cmd: spec.command ?? undefined,
      Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
      Labels: { [LABEL_JOB_ID]: spec.jobId, [LABEL_RUNNER_ID]: spec.runnerId },
      AttachStdout: true,
      AttachStderr: true,
      Tty: false,
      OpenStdin: false,
      HostConfig: {
        Memory: spec.limits.memoryMb * 1024 * 1024,
        MemorySwap: spec.limits.memoryMb * 1024 * 1024,
        NanoCpus: Math.round(spec.limits.cpus * 1e9),
        PidsLimit: spec.limits.pids,
        SecurityOpt: ['no-new-privileges'],
        CapDrop: ['ALL'],
        NetworkMode: spec.network ? 'bridge' : 'none',
        LogConfig: { Type: 'local', Config: {} },
      },
    });
    try {
      await io.system(`container ${container.id.slice(0, 12)} created`);
      const stream = (await container.attach({ stream: true, stdout: true, stderr: true })) as unknown as Readable;
      const drained = this.pump(stream, io);
      const kill = () => container.kill().catch(() => undefined);
      if (io.signal.aborted) throw new ExecFailure({ code: JobErrorCode.RunnerError, message: 'aborted before start' });
      io.signal.addEventListener('abort', kill, { once: true });
      try {
        // Logged before start(): the container's first output may arrive before start() returns.
        await io.system('starting container');
        await container.start();
        await io.started();
        const waited = (await container.wait()) as { StatusCode: number };
        await drained;
        const info = await container.inspect();
        return { exitCode: waited.StatusCode, oomKilled: info.State.OOMKilled === true };
      } finally {
        io.signal.removeEventListener('abort', kill);
        stream.destroy();
      }
    } finally {
      await container.remove({ force: true }).catch(() => undefined);
    }
  }

  /** Reads the attach stream to its end, pausing it while the log pipeline asks to wait. */
  private pump(stream: Readable, io: ExecIO): Promise<void> {
    const demuxer = new DockerStreamDemuxer();
    return new Promise<void>((resolve, reject) => {
      stream.on('data', (chunk: Buffer) => {
        const waits: Promise<void>[] = [];
        demuxer.push(chunk, (s, payload) => {
          const w = io.output(s as LogStream.Stdout | LogStream.Stderr, payload);
          if (w) waits.push(w);
        });
        if (waits.length) {
          stream.pause();
          Promise.all(waits).then(() => stream.resume(), reject);
        }
      });
      stream.once('end', resolve);
      stream.once('close', resolve);
      stream.once('error', reject);
    });
  }

  private async ensureImage(image: string, io: ExecIO): Promise<void> {
    try {
      await this.docker.getImage(image).inspect();
      await io.system(`image ${image} found locally`);
      return;
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode !== 404) throw err;
    }
    await io.system(`pulling image ${image}`);
    try {
      await this.pull(image, io);
    } catch (err) {
      throw new ExecFailure({
        code: JobErrorCode.ImageNotFound,
        message: `image ${image} is not available locally and could not be pulled: ${(err as Error).message}`,
      });
    }
    await io.system(`image ${image} pulled`);
  }

  private async pull(image: string, io: ExecIO): Promise<void> {
    const stream = (await this.docker.pull(image)) as Readable;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        stream.destroy();
        reject(new Error(`pull timed out after ${this.pullTimeoutMs} ms`));
      }, this.pullTimeoutMs);
      this.docker.modem.followProgress(
        stream,
        (err: Error | null) => {
          clearTimeout(timer);
          if (err) reject(err);
          else resolve();
        },
        (event: { status?: string; id?: string; error?: string }) => {
          if (event.error) return;
          if (event.status && !event.status.startsWith('Downloading') && !event.status.startsWith('Extracting')) {
            void io.system(`pull: ${event.id ? `${event.id}: ` : ''}${event.status}`);
          }
        },
      );
    });
  }
}
