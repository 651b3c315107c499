import Docker from 'dockerode';
import { randomBytes, randomUUID } from 'node:crypto';
import { LogMode, LogStream } from '@flashpods/contracts';
import { gate, releaseContainer, waitForFile } from '../../../../test/support/gate';
import { TEST_IMAGE, within } from '../../../../test/support/test-env';
import { DockerExecutor, LABEL_INSTALLATION, LABEL_JOB_ID, LABEL_RUNNER_ID } from './docker.executor';
import { ExecFailure, ExecIO, ExecSpec, OutputGap } from './executor';


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
      gap: async () => {
        throw new Error('a durable run has no gap');
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
    // Settled when the first kill (the one the abort triggers) has come back from the engine, however it went.
    let killCameBack!: () => void;
    const firstKillBack = new Promise<void>((r) => (killCameBack = r));
    const timed = Object.create(docker) as Docker;
    timed.createContainer = async (opts) => {
      const c = await docker.createContainer(opts);
      const start = c.start.bind(c);
      const kill = c.kill.bind(c);
      c.kill = (async (...a: unknown[]) =>
        kill(...(a as []))
          .catch((err: { statusCode?: number }) => {
            if (err.statusCode === 409) killsRefused++;
            throw err;
          })
          .finally(() => killCameBack())) as typeof c.kill;
      c.start = (async (...a: unknown[]) => {
        abort.abort();
        // The start goes to the engine only once the kill the abort triggered has come back.
        await within(15_000, firstKillBack, 'answer to the kill the abort triggers');
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

/**
 * Fast mode resumes a container with no daemon copy of its output. The containers are made as a
 * fast-mode runner makes them (the `none` driver, the labels), then resumed as a restarted runner
 * would: what was written while nobody was attached is gone, and the executor says where.
 */
describe('DockerExecutor: fast mode (real engine)', () => {
  const docker = new Docker();
  const installation = `fpt_${randomBytes(4).toString('hex')}`;
  const executor = new DockerExecutor(docker, 30_000, installation, LogMode.Fast);

  afterAll(async () => {
    const left = await docker.listContainers({ all: true, filters: { label: [`${LABEL_INSTALLATION}=${installation}`] } });
    await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
  });

  /** Records what the executor reports, in order: output text and gaps. */
  function recorder() {
    const events: (string | OutputGap)[] = [];
    const io: ExecIO = {
      output: (_s: LogStream, chunk: Buffer) => void events.push(chunk.toString()),
      system: async () => undefined,
      started: async () => undefined,
      gap: async (g: OutputGap) => void events.push(g),
      signal: new AbortController().signal,
    };
    const numbers = () => events.filter((e): e is string => typeof e === 'string').join('').split('\n').filter(Boolean).map((l) => Number(/^line (\d+)$/.exec(l)![1]));
    return { io, events, numbers };
  }

  /**
   * A container as a fast-mode runner creates it, printing `line 1` … `line n` every 20 ms. With
   * `holdAfter`, once it has printed that line it makes `/tmp/held` and waits at gate `go`.
   */
  async function fastContainer(n: number, exit = 0, holdAfter?: number) {
    const jobId = randomUUID();
    const hold = holdAfter === undefined ? '' : `[ $i -eq ${holdAfter} ] && { : > /tmp/held; ${gate('go')}; }; `;
    return docker.createContainer({
      Image: TEST_IMAGE,
      Cmd: ['sh', '-c', `i=1; while [ $i -le ${n} ]; do echo "line $i"; ${hold}i=$((i+1)); sleep 0.02; done; exit ${exit}`],
      Labels: { [LABEL_JOB_ID]: jobId, [LABEL_RUNNER_ID]: 'int-spec', [LABEL_INSTALLATION]: installation },
      AttachStdout: true,
      AttachStderr: true,
      HostConfig: { LogConfig: { Type: 'none', Config: {} }, NetworkMode: 'none' },
    });
  }

  it('run(): the container gets the none driver, and every line is read while attached', async () => {
    const rec = recorder();
    const jobId = randomUUID();
    const result = await executor.run(
      { jobId, runnerId: 'int-spec', image: TEST_IMAGE, command: ['sh', '-c', 'for i in 1 2 3; do echo "line $i"; done'], env: {}, limits: { memoryMb: 64, cpus: 0.5, pids: 32 }, network: false },
      rec.io,
    );
    expect(result.exitCode).toBe(0);
    expect(rec.numbers()).toEqual([1, 2, 3]);
    const [c] = await docker.listContainers({ all: true, filters: { label: [`${LABEL_JOB_ID}=${jobId}`] } });
    expect((await docker.getContainer(c.Id).inspect()).HostConfig.LogConfig).toEqual({ Type: 'none', Config: {} });
    expect(c.Labels['flashpods.log_mode']).toBe('fast');
    const [orphan] = (await executor.findOrphans('int-spec')).filter((o) => o.jobId === jobId);
    expect(orphan.logMode).toBe(LogMode.Fast);
  });

  it('resume of a running container: the gap comes first, then only what was written after the re-attach', async () => {
    const c = await fastContainer(100, 0, 10);
    await c.start();
    await waitForFile(c.id, '/tmp/held'); // lines 1 … 10 written with nobody attached; it waits at its gate
    const rec = recorder();
    // The container goes on only once the executor has re-attached and said so (the gap).
    let gapped!: () => void;
    const reattached = new Promise<void>((r) => (gapped = r));
    const report = rec.io.gap;
    rec.io.gap = async (g: OutputGap) => {
      await report(g);
      gapped();
    };
    const before = Date.now();
    const resuming = executor.resume(c.id, rec.io);
    await within(15_000, Promise.race([reattached, resuming.then(() => Promise.reject(new Error('resume returned before it reported a gap')))]), 'gap from the resume');
    await releaseContainer(c.id, 'go');
    const result = await resuming;
    expect(result.exitCode).toBe(0);
    const gap = rec.events[0] as OutputGap;
    expect(typeof gap).toBe('object');
    expect(gap.exited).toBe(false);
    expect(gap.until).toBeGreaterThanOrEqual(before);
    expect(rec.events.filter((e) => typeof e === 'object')).toHaveLength(1);
    const got = rec.numbers();
    expect(got[0]).toBeGreaterThan(5);
    expect(got).toEqual(Array.from({ length: 100 - got[0] + 1 }, (_, i) => got[0] + i));
  }, 30_000);

  it('resume of an exited container: a gap up to its exit and its exit code, without attaching (no dead attach to wait on)', async () => {
    const c = await fastContainer(3, 3);
    await c.start();
    await c.wait();
    const finishedAt = Date.parse((await c.inspect()).State.FinishedAt);
    const rec = recorder();
    const t0 = Date.now();
    const result = await executor.resume(c.id, rec.io);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(result.exitCode).toBe(3);
    expect(rec.events).toEqual([{ until: finishedAt, exited: true }]);
  }, 20_000);

  it('resume of a container that exits between the inspect and the attach: the dead attach is closed, no hang', async () => {
    // The engine is real; only the moment is forced: the container runs when the executor inspects
    // it, and the attach reaches the engine once it has exited. The engine never ends such an
    // attach (it waits for a next start); the executor must close it itself.
    const c = await fastContainer(25, 4);
    await c.start();
    let attachedAfterExit: boolean | undefined;
    const timed = Object.create(docker) as Docker;
    timed.getContainer = (id: string) => {
      const real = docker.getContainer(id);
      const attach = real.attach.bind(real);
      real.attach = (async (opts: object) => {
        await real.wait();
        attachedAfterExit = !(await real.inspect()).State.Running;
        return attach(opts);
      }) as typeof real.attach;
      return real;
    };
    const rec = recorder();
    const t0 = Date.now();
    const result = await within(10_000, new DockerExecutor(timed, 30_000, installation, LogMode.Fast).resume(c.id, rec.io));
    expect(attachedAfterExit).toBe(true);
    expect(result.exitCode).toBe(4);
    // Taken for running (the gap is up to the re-attach, not the exit): the attach is what was raced.
    expect(rec.events).toEqual([{ until: expect.any(Number), exited: false }]);
    expect(Date.now() - t0).toBeLessThan(5000);
  }, 20_000);

  it('resume of a container never started: attached before its start, nothing lost, no gap', async () => {
    const c = await fastContainer(5);
    const rec = recorder();
    const result = await executor.resume(c.id, rec.io);
    expect(result.exitCode).toBe(0);
    expect(rec.events.filter((e) => typeof e === 'object')).toEqual([]);
    expect(rec.numbers()).toEqual([1, 2, 3, 4, 5]);
  }, 20_000);
});
