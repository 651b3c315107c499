import { JobErrorCode, LogStream } from '@flashpods/contracts';
import Docker from 'dockerode';
import { Readable } from 'node:stream';
import { DockerStreamDemuxer } from './docker-stream.demuxer';
import { ExecFailure, ExecIO, ExecResult, ExecSpec, Executor, Orphan } from './executor';

export const LABEL_JOB_ID = 'flashpods.job_id';
export const LABEL_RUNNER_ID = 'flashpods.runner_id';
/** Which Flashpods installation (its Redis prefix) owns the container: several may share an engine. */
export const LABEL_INSTALLATION = 'flashpods.installation';

/** RFC 3339 with nanoseconds, as the logs API prefixes each message when asked for timestamps. */
const DOCKER_TS = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z) /;

/**
 * The daemon's own copy of the output, kept by the `local` log driver, is what a restarted runner
 * replays; it must hold at least what a job may write while its runner is away.
 */
const LOG_DRIVER = { Type: 'local', Config: { 'max-size': '100m', 'max-file': '5' } };

/**
 * Runs a job in a Docker container. Output is read through `attach` (opened before `start`, so
 * the first byte is never missed): it is real-time and the fastest path measured here. The
 * container uses the `local` log driver so the daemon keeps its own copy: a runner that restarts
 * replays it through the logs API (slower, but with the daemon's timestamps) and follows it.
 */
export class DockerExecutor implements Executor {
  readonly kind = 'docker' as const;

  constructor(
    private readonly docker: Docker,
    private readonly pullTimeoutMs: number,
    private readonly installation: string,
  ) {}

  async run(spec: ExecSpec, io: ExecIO): Promise<ExecResult> {
    await this.ensureImage(spec.image, io);
    const container = await this.docker.createContainer({
      Image: spec.image,
      Cmd: spec.command ?? undefined,
      Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
      Labels: { [LABEL_JOB_ID]: spec.jobId, [LABEL_RUNNER_ID]: spec.runnerId, [LABEL_INSTALLATION]: this.installation },
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
        LogConfig: LOG_DRIVER,
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
      // Not awaited: the output is drained and the exit code read, so the job's status need not
      // wait for the daemon to delete the container. One left behind by a crash is removed when
      // the runner restarts (its job is terminal by then).
      void container.remove({ force: true }).catch(() => undefined);
    }
  }

  async findOrphans(runnerId?: string): Promise<Orphan[]> {
    const label = [`${LABEL_INSTALLATION}=${this.installation}`, ...(runnerId ? [`${LABEL_RUNNER_ID}=${runnerId}`] : [])];
    const found = await this.docker.listContainers({ all: true, filters: { label } });
    return Promise.all(
      found.map(async (c) => {
        const info = await this.docker.getContainer(c.Id).inspect();
        const env = Object.fromEntries(
          (info.Config.Env ?? []).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
        );
        return {
          jobId: c.Labels[LABEL_JOB_ID],
          runnerId: c.Labels[LABEL_RUNNER_ID],
          handle: c.Id,
          running: info.State.Running,
          state: info.State.Status,
          env,
        };
      }),
    );
  }

  async resume(handle: string, io: ExecIO): Promise<ExecResult> {
    const container = this.docker.getContainer(handle);
    const kill = () => container.kill().catch(() => undefined);
    io.signal.addEventListener('abort', kill, { once: true });
    try {
      if ((await container.inspect()).State.Status === 'created') await container.start();
      const stream = (await container.logs({
        follow: true,
        stdout: true,
        stderr: true,
        timestamps: true,
      })) as unknown as Readable;
      try {
        await this.pump(stream, io, true);
      } finally {
        stream.destroy();
      }
      const waited = (await container.wait()) as { StatusCode: number };
      const info = await container.inspect();
      return { exitCode: waited.StatusCode, oomKilled: info.State.OOMKilled === true };
    } finally {
      io.signal.removeEventListener('abort', kill);
      await container.remove({ force: true }).catch(() => undefined);
    }
  }

  async discard(handle: string): Promise<void> {
    await this.docker.getContainer(handle).remove({ force: true }).catch(() => undefined);
  }

  /**
   * Reads an attach or logs stream to its end, pausing it while the log pipeline asks to wait.
   * With `timestamped`, each message starts with the daemon's timestamp, which is taken off and
   * used as the time of the bytes.
   */
  private pump(stream: Readable, io: ExecIO, timestamped = false): Promise<void> {
    const demuxer = new DockerStreamDemuxer();
    return new Promise<void>((resolve, reject) => {
      stream.on('data', (chunk: Buffer) => {
        const waits: Promise<void>[] = [];
        demuxer.push(chunk, (s, payload) => {
          let ts: number | undefined;
          if (timestamped) {
            const m = DOCKER_TS.exec(payload.subarray(0, 40).toString('latin1'));
            if (m) {
              ts = Date.parse(m[1]);
              payload = payload.subarray(m[0].length);
            }
          }
          const w = io.output(s as LogStream.Stdout | LogStream.Stderr, payload, ts);
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
