import { Writable } from 'node:stream';
import { main } from './cli.program';
import { Output } from './output';

/** Runs the CLI in-process with captured output; only arguments and configuration, no API. */
async function cli(argv: string[], env: NodeJS.ProcessEnv = {}) {
  const sink = () => {
    const chunks: string[] = [];
    const stream = new Writable({
      write(chunk, _enc, done) {
        chunks.push(chunk.toString());
        done();
      },
    });
    return { stream, text: () => chunks.join('') };
  };
  const out = sink();
  const err = sink();
  const code = await main(argv, new Output(out.stream, err.stream), env);
  return { code, stdout: out.text(), stderr: err.text() };
}

const env = { FLASHPODS_URL: 'http://127.0.0.1:9', FLASHPODS_TOKEN: 'tok' };

describe('flashpods command line', () => {
  it('prints help with the exit codes and exits 0', async () => {
    const r = await cli(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: flashpods /);
    expect(r.stdout).toMatch(/^ {2}124 {5}run: the job timed out$/m);
    expect(r.stderr).toBe('');
  });

  it('prints its version', async () => {
    const r = await cli(['--version']);
    expect(r).toEqual({ code: 0, stdout: '0.1.0\n', stderr: '' });
  });

  it('answers a usage error with one line and 64', async () => {
    for (const argv of [['run'], ['run', 'busybox', '--bogus'], ['frobnicate'], ['ls', '--status', 'finished'], ['logs', 'x', '--stream', 'both'], ['run', 'busybox', '--timeout', '0', '--', 'true']]) {
      const r = await cli(argv, env);
      expect({ argv, code: r.code, lines: r.stderr.split('\n').length }).toEqual({ argv, code: 64, lines: 2 });
      expect(r.stderr).toMatch(/^flashpods: /);
      expect(r.stdout).toBe('');
    }
  });

  it('refuses a job id that is not a UUID before any request', async () => {
    const r = await cli(['get', '../tokens'], env);
    expect(r).toEqual({ code: 64, stdout: '', stderr: 'flashpods: ../tokens: not a job id (job ids are UUIDs, as flashpods ls shows them)\n' });
  });

  it('answers missing configuration with one line and 78', async () => {
    expect(await cli(['ls'], {})).toEqual({ code: 78, stdout: '', stderr: 'flashpods: no API URL: set FLASHPODS_URL (npm start prints it) or pass --url\n' });
    expect(await cli(['ls'], { FLASHPODS_URL: 'http://h' })).toEqual({ code: 78, stdout: '', stderr: 'flashpods: no token: set FLASHPODS_TOKEN (npm start prints it) or pass --token\n' });
    // Flags may stand before or after the command.
    expect((await cli(['ls', '--url', 'http://h'], { FLASHPODS_TOKEN: '' })).stderr).toMatch(/^flashpods: no token/);
  });
});
