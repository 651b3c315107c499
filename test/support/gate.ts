import Docker from 'dockerode';
import { waitFor } from './test-env';

/**
 * Gates: a job's shell command waits at a point of the test's choosing, so that the test, not the
 * machine's speed, decides when the job goes on. The job waits with `gate(name)` in its command;
 * the test lets it go on with `release(jobId, name)`, which creates `/tmp/<name>` in the job's
 * container. A job may have several gates (`go-1`, `go-2`, …).
 */

const NAME = /^[A-Za-z0-9_.$-]+$/;

/**
 * Shell (one compound command, so `[ … ] && ${gate()}` works) that waits until gate `name` is
 * released. `name` may use shell variables (`go-$k`), as the job expands it. A gate never released
 * (its test failed) ends the job with exit code 97 after at least 10 minutes, so no container is
 * left waiting for ever; no test waits that long.
 */
export function gate(name = 'go'): string {
  if (!NAME.test(name)) throw new Error(`bad gate name ${name}`);
  return `{ _g=0; while [ ! -e /tmp/${name} ]; do sleep 0.05; _g=$((_g+1)); [ $_g -ge 12000 ] && exit 97; done; }`;
}

/**
 * Lets a job waiting at gate `name` go on: creates `/tmp/<name>` in its running container (found
 * by its label) and returns once the file is there. The test image is busybox only, with no
 * `touch` on PATH: the shell's redirection makes the file.
 */
export async function release(jobId: string, name = 'go'): Promise<void> {
  const docker = new Docker();
  const id = await waitFor(`the running container of job ${jobId}`, async () => {
    const [c] = await docker.listContainers({ filters: { label: [`flashpods.job_id=${jobId}`], status: ['running'] } });
    return c?.Id;
  }, 30000, 50);
  await releaseContainer(id, name, `job ${jobId}`);
}

/**
 * `release` for a container known by its id rather than by a job's label (a container a test
 * made itself, with `gate(name)` in its command): returns once `/tmp/<name>` is there.
 */
export async function releaseContainer(containerId: string, name = 'go', what = `container ${containerId.slice(0, 12)}`): Promise<void> {
  if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new Error(`bad gate name ${name}`);
  const code = await runIn(containerId, `: > /tmp/${name}`, `gate ${name} of ${what} to be released`);
  if (code !== 0) throw new Error(`releasing gate ${name} of ${what}: the command exited with ${code}`);
}

/**
 * Waits until `path` exists in the running container `containerId`: a container's command makes
 * a file (`: > /tmp/x`) to tell the test it has got that far, which no output needs to show.
 */
export async function waitForFile(containerId: string, path: string, timeoutMs = 30000): Promise<void> {
  if (!/^[A-Za-z0-9_./-]+$/.test(path)) throw new Error(`bad path ${path}`);
  const what = `${path} in container ${containerId.slice(0, 12)}`;
  await waitFor(what, async () => ((await runIn(containerId, `test -e ${path}`, `looking for ${what}`)) === 0 ? true : undefined), timeoutMs, 50);
}

/** Runs `script` with `sh -c` in the running container `containerId`, to its end; its exit code. */
async function runIn(containerId: string, script: string, what: string): Promise<number> {
  const exec = await new Docker().getContainer(containerId).exec({ Cmd: ['sh', '-c', script] });
  // Its (empty) answer is read to its end, or its socket stays open and keeps jest from exiting.
  const answer = (await exec.start({ Detach: true })) as NodeJS.ReadableStream;
  await new Promise<void>((resolve, reject) => answer.once('end', resolve).once('error', reject).resume());
  // Detached, `start` answers once the command has started: wait until it has ended.
  const done = await waitFor(what, async () => {
    const info = await exec.inspect();
    return info.Running ? undefined : info;
  }, 30000, 20);
  return done.ExitCode ?? -1;
}
