import Docker from 'dockerode';
import { randomBytes, randomUUID } from 'node:crypto';
import { LogStream } from '@flashpods/contracts';
import { TEST_IMAGE } from '../../../../test/support/test-env';
import { DockerExecutor } from './docker.executor';
import { ExecFailure, ExecIO, ExecSpec } from './executor';

/**
 * A timeout or cancel that fires between `create` and `start`: the kill of a created container
 * fails (there is nothing running), so unless the executor checks again, start() runs a job that
 * was meant to be dead. Real engine, real containers.
 */
describe('DockerExecutor: a kill between create and start (real engine)', () => {
  const docker = new Docker();
  const installation = `fpt_${randomBytes(4).toString('hex')}`;
  const executor = new DockerExecutor(docker, 30_000, installation);

  afterAll(async () => {
    const left = await docker.listContainers({ all: true, filters: { label: [`flashpods.installation=${installation}`] } });
    await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
  });

  const spec = (): ExecSpec => ({
    jobId: randomUUID(),
    runnerId: 'int-spec',
    image: TEST_IMAGE,
    command: ['sh', '-c', 'echo started; sleep 30'],
    env: {},
    limits: { memoryMb: 64, cpus: 0.5, pids: 32 },
    network: false,
  });

  /** An ExecIO that aborts when the executor says `when`, either at once or on the next turn. */
  function io(when: string, later: boolean) {
    const abort = new AbortController();
    const output: string[] = [];
    let started = false;
    const value: ExecIO = {
      output: (stream: LogStream, chunk: Buffer) => void output.push(chunk.toString()),
      system: async (text: string) => {
        if (text === when) {
          if (later) setImmediate(() => abort.abort());
          else abort.abort();
        }
      },
      started: async () => {
        started = true;
      },
      signal: abort.signal,
    };
    return { value, output, started: () => started };
  }

  const containerOf = async (jobId: string) => {
    const [c] = await docker.listContainers({ all: true, filters: { label: [`flashpods.job_id=${jobId}`] } });
    return docker.getContainer(c.Id).inspect();
  };

  it('aborted after create and before start: the container is never started', async () => {
    const s = spec();
    const probe = io('starting container', false);
    await expect(executor.run(s, probe.value)).rejects.toBeInstanceOf(ExecFailure);
    const info = await containerOf(s.jobId);
    expect(info.State.Status).toBe('created');
    expect(info.State.StartedAt).toBe('0001-01-01T00:00:00Z');
    expect(probe.started()).toBe(false);
    expect(probe.output).toEqual([]);
  });

  it('aborted while start() is on its way: the started container is killed at once, not left to run', async () => {
    // The engine is real; only the moment is forced: the abort lands just before the start request
    // reaches the engine, so the kill it triggers finds a container that is not running yet (409).
    const abort = new AbortController();
    let killsRefused = 0;
    const timed = Object.create(docker) as Docker;
    timed.createContainer = async (opts) => {
      const c = await docker.createContainer(opts);
      const start = c.start.bind(c);
      const kill = c.kill.bind(c);
      c.kill = (async (...a: unknown[]) => kill(...(a as [])).catch((err: { statusCode?: number }) => {
        if (err.statusCode === 409) killsRefused++;
        throw err;
      })) as typeof c.kill;
      c.start = (async (...a: unknown[]) => {
        abort.abort();
        await new Promise((r) => setTimeout(r, 200)); // the refused kill has come back by now
        return start(...(a as []));
      }) as typeof c.start;
      return c;
    };
    const s = spec();
    const probe = io('never', false);
    const t0 = Date.now();
    const result = await new DockerExecutor(timed, 30_000, installation).run(s, { ...probe.value, signal: abort.signal });
    expect(killsRefused).toBe(1);
    // Killed (SIGKILL, 137) within moments, not after its 30 s sleep.
    expect(result.exitCode).toBe(137);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect((await containerOf(s.jobId)).State.Status).toBe('exited');
  }, 20_000);
});
