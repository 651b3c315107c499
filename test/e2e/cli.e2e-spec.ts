import { ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gate, release } from '../support/gate';
import { freePort, Stack } from '../support/stack';
import { TEST_IMAGE, waitFor } from '../support/test-env';

/** The bin `npm ci` links, as a user runs it with `npx flashpods`; built by `npm run build`, not here. */
const BIN = join(__dirname, '..', '..', 'node_modules', '.bin', 'flashpods');
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;

interface Cli {
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the exit code once the process has exited and its output is read. */
  exited: Promise<number | null>;
}

describe('the flashpods CLI against a running stack', () => {
  let stack: Stack;
  let scratch: string;
  beforeAll(async () => {
    if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run npm ci && npm run build`);
    scratch = mkdtempSync(join(tmpdir(), 'fp-cli-'));
    stack = await Stack.start(['api', 'runner', 'persister']);
  }, 60000);
  afterAll(async () => {
    rmSync(scratch, { recursive: true, force: true });
    await stack?.stop();
  });

  const start = (args: string[], env: Record<string, string> = {}): Cli => {
    const proc = spawn(BIN, args, {
      cwd: scratch,
      env: { ...process.env, FLASHPODS_URL: stack.baseUrl, FLASHPODS_TOKEN: stack.token, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    proc.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    proc.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    const exited = new Promise<number | null>((resolve) => proc.once('close', (code) => resolve(code)));
    return { proc, stdout: () => out, stderr: () => err, exited };
  };
  const cli = async (args: string[], env: Record<string, string> = {}) => {
    const c = start(args, env);
    const code = await c.exited;
    return { code, stdout: c.stdout(), stderr: c.stderr() };
  };
  /** The one job carrying this label (the CLI's `run` does not print its id unless asked). */
  const jobLabelled = async (label: string) => {
    const { body } = await stack.json('GET', `/jobs?label=${encodeURIComponent(label)}`);
    expect(body.jobs).toHaveLength(1);
    return body.jobs[0];
  };
  const submit = async (command: string[], extra: Record<string, unknown> = {}) => {
    const created = await stack.json('POST', '/jobs', { image: TEST_IMAGE, command, ...extra });
    expect(created.status).toBe(201);
    return created.body.id as string;
  };
  const waitStatus = (id: string, status: string) =>
    waitFor(`job ${id} to be ${status}`, async () => ((await stack.json('GET', `/jobs/${id}`)).body.status === status ? true : undefined), 30000, 50);

  it('run streams stdout to stdout and stderr to stderr and exits with the job’s code', async () => {
    const r = await cli(['run', TEST_IMAGE, '--', 'sh', '-c', 'echo out; echo err >&2; exit 3']);
    expect(r).toEqual({ code: 3, stdout: 'out\n', stderr: 'err\n' });
  });

  it('run exits 0 for a completed job, passes env, masks secrets and labels the job', async () => {
    const label = `case=${randomUUID()}`;
    const r = await cli(['run', '--env', 'GREETING=hello there', '--secret', 'TOKEN', '--label', label, TEST_IMAGE, '--', 'sh', '-c', 'echo "$GREETING"; echo "token=$TOKEN"'], {
      TOKEN: 'hunter2-secret',
    });
    expect(r).toEqual({ code: 0, stdout: 'hello there\ntoken=[MASKED]\n', stderr: '' });
    const job = await jobLabelled(label);
    expect(job).toMatchObject({ status: 'completed', exit_code: 0, env: { GREETING: 'hello there' }, secrets: ['TOKEN'] });
  });

  it('run --verbose adds the system lines and the outcome on stderr only', async () => {
    const r = await cli(['--verbose', 'run', TEST_IMAGE, '--', 'sh', '-c', 'echo out; exit 2']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('out\n');
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines[0]).toMatch(new RegExp(`^flashpods: job ${UUID.source} submitted$`));
    expect(lines).toContain('exited with code 2');
    expect(lines[lines.length - 1]).toMatch(/^flashpods: job \S+ failed \(nonzero_exit: exited with code 2\); exit 2$/);
  });

  it('run exits 124 when the job times out, 125 when it fails without an exit code', async () => {
    const label = `case=${randomUUID()}`;
    const t = await cli(['run', '--timeout', '1', '--label', label, TEST_IMAGE, '--', 'sh', '-c', 'echo started; sleep 30']);
    expect(t.code).toBe(124);
    expect(t.stdout).toBe('started\n');
    const timedOut = await jobLabelled(label);
    expect(t.stderr).toBe(`flashpods: job ${timedOut.id} timed out; exit 124\n`);
    expect(timedOut.status).toBe('timed_out');

    const f = await cli(['run', 'flashpods/no-such-image:never', '--', 'true']);
    expect(f.code).toBe(125);
    expect(f.stdout).toBe('');
    expect(f.stderr).toMatch(/^flashpods: job \S+ failed \(image_not_found: .+\); exit 125\n$/);
  });

  it('run --detach prints the job id and returns at once; --json prints the job', async () => {
    const d = await cli(['run', '-d', TEST_IMAGE, '--', 'sh', '-c', 'echo hi']);
    expect(d.code).toBe(0);
    expect(d.stdout).toMatch(new RegExp(`^${UUID.source}\n$`));
    const id = d.stdout.trim();
    expect((await stack.waitTerminal(id)).job.status).toBe('completed');

    const j = await cli(['run', '-d', '--json', TEST_IMAGE, '--', 'true']);
    expect(j.code).toBe(0);
    expect(JSON.parse(j.stdout)).toMatchObject({ id: expect.stringMatching(UUID), image: TEST_IMAGE, command: ['true'], status: 'pending' });
  });

  it('Ctrl-C cancels the job, waits for it to end and exits 130', async () => {
    const label = `case=${randomUUID()}`;
    const c = start(['run', '--label', label, TEST_IMAGE, '--', 'sh', '-c', 'echo ready; sleep 60; echo never']);
    await waitFor('the job to print ready', async () => (c.stdout() === 'ready\n' ? true : undefined), 30000, 50);
    const job = await jobLabelled(label);
    expect(job.status).toBe('running');
    c.proc.kill('SIGINT');
    expect(await c.exited).toBe(130);
    // The CLI exits once the job has ended, not merely once it asked: the status is final already.
    const after = await stack.json('GET', `/jobs/${job.id}`);
    expect(after.body.status).toBe('cancelled');
    expect(c.stdout()).toBe('ready\n');
    expect(c.stderr()).toBe(`flashpods: cancelling job ${job.id} (Ctrl-C again to exit now)\nflashpods: job ${job.id} cancelled; exit 130\n`);
  });

  it('logs -f on a running job prints what is there, follows to the end and exits 0', async () => {
    // `second` waits at a gate until the test has seen logs -f follow the running job.
    const id = await submit(['sh', '-c', `echo first; echo warn >&2; ${gate()}; echo second`]);
    await waitFor('the first line to be stored', async () => {
      const r = await stack.json('GET', `/jobs/${id}/logs?stream=stdout`);
      return r.status === 200 && r.body.logs.some((l: any) => l.line === 'first') ? true : undefined;
    });
    const c = start(['logs', '-f', id]);
    await waitFor('logs -f to print the first line', async () => (c.stdout() === 'first\n' ? true : undefined), 30000, 50);
    // Still following a job that is still running: what comes next comes from the live stream.
    expect(c.proc.exitCode).toBeNull();
    expect((await stack.json('GET', `/jobs/${id}`)).body.status).toBe('running');
    await release(id);
    expect(await c.exited).toBe(0);
    expect(c.stdout()).toBe('first\nsecond\n');
    // stderr and system lines go to stderr, each once, in order.
    const err = c.stderr().trimEnd().split('\n');
    expect(err.filter((l) => l === 'warn')).toHaveLength(1);
    expect(err[err.length - 1]).toBe('exited with code 0');
    expect((await stack.json('GET', `/jobs/${id}`)).body.status).toBe('completed');
  });

  it('run and logs -f resume after the API is killed and restarted, without a gap or a duplicate', async () => {
    // The second half waits at a gate, opened once the API is down: the job is mid-way when the
    // clients are cut off, and prints the rest while the API is away.
    const script = `i=0; while [ $i -lt 60 ]; do i=$((i+1)); echo "n $i"; [ $i -eq 30 ] && ${gate()}; sleep 0.1; done`;
    const expected = Array.from({ length: 60 }, (_, i) => `n ${i + 1}\n`).join('');
    const label = `case=${randomUUID()}`;
    const run = start(['run', '--label', label, TEST_IMAGE, '--', 'sh', '-c', script]);
    await waitFor('run to print a few lines', async () => (run.stdout().includes('n 5\n') ? true : undefined), 30000, 20);
    const jobId = (await jobLabelled(label)).id;
    const follow = start(['logs', '-f', jobId]);
    await waitFor('logs -f to print a few lines', async () => (follow.stdout().includes('n 8\n') ? true : undefined), 30000, 20);
    await stack.stopService('api', 'SIGKILL');
    // Both clients are cut off mid-job; the job runs on, and both reconnect once the API is back.
    expect(run.stdout().length).toBeLessThan(expected.length);
    expect(follow.stdout().length).toBeLessThan(expected.length);
    await release(jobId);
    stack.startService('api');
    await stack.waitReady();
    expect(await run.exited).toBe(0);
    const followed = await follow.exited;
    expect([followed, followed === 0 ? '' : follow.stderr()]).toEqual([0, '']); // its stderr when it fails
    expect(run.stdout()).toBe(expected);
    expect(follow.stdout()).toBe(expected);
    expect(run.stderr()).toBe('');
  });

  it('logs reads back with --tail, --stream, --grep, --timestamps and --json', async () => {
    const id = await submit(['sh', '-c', 'for i in 1 2 3 4 5; do echo "out $i"; done; sleep 0.2; echo "Error: bad" >&2']);
    await stack.waitTerminal(id);
    const all = (await stack.json('GET', `/jobs/${id}/logs?limit=1000`)).body.logs;

    expect(await cli(['logs', id, '--stream', 'stdout', '--tail', '2'])).toEqual({ code: 0, stdout: 'out 4\nout 5\n', stderr: '' });
    expect(await cli(['logs', id, '--stream', 'stderr'])).toEqual({ code: 0, stdout: '', stderr: 'Error: bad\n' });
    expect(await cli(['logs', id, '--grep', 'ERROR'])).toEqual({ code: 0, stdout: '', stderr: 'Error: bad\n' });
    // Unfiltered tail: the last lines of the whole log, the system line included.
    expect(await cli(['logs', id, '-n', '2'])).toEqual({ code: 0, stdout: '', stderr: 'Error: bad\nexited with code 0\n' });

    const t = await cli(['logs', id, '--stream', 'stdout', '--timestamps', '-n', '1']);
    const last = all.filter((l: any) => l.stream === 'stdout').pop();
    expect(t).toEqual({ code: 0, stdout: `${last.ts} out 5\n`, stderr: '' });

    const j = await cli(['logs', id, '--json']);
    expect(j.code).toBe(0);
    expect(j.stdout.trimEnd().split('\n').map((l) => JSON.parse(l))).toEqual(all);
  });

  it('ls, get, cancel, rm, with --json', async () => {
    const label = `case=${randomUUID()}`;
    const running = await submit(['sh', '-c', 'sleep 60'], { labels: { case: label.split('=')[1] } });
    const done = await submit(['sh', '-c', 'exit 4'], { labels: { case: label.split('=')[1] } });
    await stack.waitTerminal(done);
    await waitStatus(running, 'running');

    const ls = await cli(['ls', '--label', label, '--json']);
    expect(ls.code).toBe(0);
    expect(JSON.parse(ls.stdout).map((j: any) => [j.id, j.status, j.exit_code])).toEqual([
      [done, 'failed', 4],
      [running, 'running', null],
    ]);
    const table = await cli(['ls', '--label', label, '--status', 'failed']);
    expect(table.code).toBe(0);
    const rows = table.stdout.trimEnd().split('\n');
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatch(/^ID +STATUS +EXIT +AGE +IMAGE +COMMAND$/);
    expect(rows[1]).toMatch(new RegExp(`^${done} +failed +4 +\\d+[smhd] +${TEST_IMAGE.replace(/[./]/g, '\\$&')} +sh -c 'exit 4'$`));
    const limited = await cli(['ls', '--label', label, '--limit', '1', '--json']);
    expect(JSON.parse(limited.stdout).map((j: any) => j.id)).toEqual([done]);

    const get = await cli(['get', done, '--json']);
    expect(get.code).toBe(0);
    expect(JSON.parse(get.stdout)).toEqual((await stack.json('GET', `/jobs/${done}`)).body);
    const human = await cli(['get', done]);
    expect(human.stdout).toMatch(/^status +failed$/m);
    expect(human.stdout).toMatch(/^exit code +4$/m);
    expect(human.stdout).toMatch(/^error +nonzero_exit: exited with code 4$/m);

    // rm refuses a running job; cancel stops it; a second cancel and a get after rm are errors.
    expect(await cli(['rm', running])).toEqual({ code: 65, stdout: '', stderr: 'flashpods: job is running; cancel it first (409 job_not_terminal)\n' });
    expect(await cli(['cancel', running])).toEqual({ code: 0, stdout: `cancel requested for ${running} (running)\n`, stderr: '' });
    expect((await stack.waitTerminal(running)).job.status).toBe('cancelled');
    expect(await cli(['cancel', running])).toEqual({ code: 65, stdout: '', stderr: 'flashpods: job is already cancelled (409 job_terminal)\n' });
    expect(await cli(['rm', running])).toEqual({ code: 0, stdout: `deleted ${running}\n`, stderr: '' });
    expect((await stack.json('GET', `/jobs/${running}`)).status).toBe(404);
    expect(await cli(['get', running])).toEqual({ code: 66, stdout: '', stderr: 'flashpods: job not found (404 job_not_found)\n' });
    const rmJson = await cli(['rm', done, '--json']);
    expect([rmJson.code, JSON.parse(rmJson.stdout)]).toEqual([0, { id: done, deleted: true }]);
  });

  it('cancel of a pending job cancels it at once', async () => {
    // No runner can take it: the queue is served by nobody while the runner is stopped.
    await stack.stopService('runner');
    try {
      const id = await submit(['true']);
      const r = await cli(['cancel', id, '--json']);
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ id, status: 'cancelled' });
    } finally {
      stack.startService('runner');
    }
  });

  it('download writes the whole log file, without a progress bar when stderr is not a terminal', async () => {
    const id = await submit(['sh', '-c', 'for i in $(seq 1 10000); do echo "line $i of the log"; done']);
    await stack.waitTerminal(id);
    const expected = Buffer.from(await (await stack.request('GET', `/jobs/${id}/logs/download`)).arrayBuffer());
    // Larger than a pipe's buffer (64 KiB), for the `| head` case below.
    expect(expected.length).toBeGreaterThan(200_000);

    const r = await cli(['download', id]);
    expect(r).toEqual({ code: 0, stdout: `wrote ${expected.length} bytes to ${id}.log\n`, stderr: '' });
    expect(readFileSync(join(scratch, `${id}.log`)).equals(expected)).toBe(true);

    const file = join(scratch, 'named.log');
    const named = await cli(['download', id, '-o', file, '--json']);
    expect([named.code, JSON.parse(named.stdout), named.stderr]).toEqual([0, { id, file, bytes: expected.length }, '']);
    expect(readFileSync(file).equals(expected)).toBe(true);

    const piped = start(['download', id, '-o', '-']);
    const chunks: Buffer[] = [];
    piped.proc.stdout!.on('data', (b: Buffer) => chunks.push(b));
    expect(await piped.exited).toBe(0);
    expect(Buffer.concat(chunks).equals(expected)).toBe(true);

    // A reader that goes away (`flashpods logs ID | head`): exit 141 quietly, no stack trace.
    const headed = start(['logs', id, '--stream', 'stdout']);
    headed.proc.stdout!.once('data', () => headed.proc.stdout!.destroy());
    expect(await headed.exited).toBe(141);
    expect(headed.stderr()).toBe('');

    const missing = await cli(['download', randomUUID()]);
    expect(missing).toEqual({ code: 66, stdout: '', stderr: 'flashpods: job not found (404 job_not_found)\n' });
  });

  it('a bad token, another tenant’s job and an unreachable API each give one line and their own code', async () => {
    const bad = await cli(['ls'], { FLASHPODS_TOKEN: 'fp_' + 'x'.repeat(43) });
    expect(bad).toEqual({ code: 77, stdout: '', stderr: 'flashpods: the API refused the token (401 unauthorized): check FLASHPODS_TOKEN\n' });
    const badRun = await cli(['run', TEST_IMAGE, '--', 'true'], { FLASHPODS_TOKEN: 'wrong-token' });
    expect([badRun.code, badRun.stdout, badRun.stderr.split('\n').length]).toEqual([77, '', 2]);

    const tenant = (await stack.json('POST', '/tokens', { tenant: 'cli-other', name: 'cli' })).body.token;
    const adminJob = await submit(['true']);
    const other = await cli(['get', adminJob], { FLASHPODS_TOKEN: tenant });
    expect(other).toEqual({ code: 66, stdout: '', stderr: 'flashpods: job not found (404 job_not_found)\n' });

    const closed = `http://127.0.0.1:${await freePort()}`;
    for (const args of [['ls'], ['run', TEST_IMAGE, '--', 'true'], ['logs', '-f', adminJob]]) {
      const r = await cli(args, { FLASHPODS_URL: closed });
      expect({ args, ...r }).toEqual({ args, code: 69, stdout: '', stderr: `flashpods: cannot reach the API at ${closed}: ECONNREFUSED\n` });
    }

    const invalid = await cli(['run', '--memory', '1', TEST_IMAGE, '--', 'true']);
    expect(invalid.code).toBe(65);
    expect(invalid.stderr).toMatch(/^flashpods: limits\.memory_mb: .+ \(400 invalid_request\)\n$/);
  });
});
