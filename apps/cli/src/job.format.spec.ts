import { JobStatus } from '@flashpods/contracts';
import { JobView } from './api.types';
import { age, jobDetail, jobTable, shellWords } from './job.format';

const job = (over: Partial<JobView> = {}): JobView => ({
  id: '0f8fad5b-d9cb-469f-a165-70867728950e',
  tenant: 'admin',
  status: JobStatus.Failed,
  image: 'flashpods/busybox:test',
  command: ['sh', '-c', 'echo out; exit 3'],
  env: { A: '1' },
  secrets: ['TOKEN'],
  labels: { team: 'x' },
  timeout_seconds: 60,
  limits: { memory_mb: 512, cpus: 1, pids: 256 },
  network: false,
  exit_code: 3,
  error: { code: 'nonzero_exit', message: 'exited with code 3' },
  runner_id: 'r1',
  created_at: '2026-11-21T11:59:00.000Z',
  started_at: '2026-11-21T11:59:01.000Z',
  running_at: '2026-11-21T11:59:02.000Z',
  finished_at: '2026-11-21T11:59:03.000Z',
  cleaned_at: null,
  log: { bytes: 100, lines: 4, truncated: false, mode: 'durable', lines_lost: false },
  ...over,
});

describe('age', () => {
  const now = Date.parse('2026-11-21T12:00:00.000Z');
  it('rounds down to the largest unit', () => {
    expect(age('2026-11-21T11:59:59.500Z', now)).toBe('0s');
    expect(age('2026-11-21T11:59:01.000Z', now)).toBe('59s');
    expect(age('2026-11-21T11:59:00.000Z', now)).toBe('1m');
    expect(age('2026-11-21T11:00:00.001Z', now)).toBe('59m');
    expect(age('2026-11-21T11:00:00.000Z', now)).toBe('1h');
    expect(age('2026-11-20T12:00:00.001Z', now)).toBe('23h');
    expect(age('2026-11-18T12:00:00.000Z', now)).toBe('3d');
    expect(age('2026-11-21T12:00:05.000Z', now)).toBe('0s'); // a clock a little ahead
  });
});

describe('shellWords', () => {
  it('quotes only what a shell would split or expand', () => {
    expect(shellWords(['sh', '-c', 'echo out; exit 3'])).toBe("sh -c 'echo out; exit 3'");
    expect(shellWords(['echo', "it's"])).toBe("echo 'it'\\''s'");
    expect(shellWords(['ls', '/tmp/a.b', 'k=v'])).toBe('ls /tmp/a.b k=v');
    expect(shellWords(['echo', ''])).toBe("echo ''");
    expect(shellWords(null)).toBe('');
  });
});

describe('jobTable', () => {
  it('aligns one row per job under a header', () => {
    const now = Date.parse('2026-11-21T12:00:00.000Z');
    const other = job({ id: '11111111-2222-3333-4444-555555555555', status: JobStatus.Running, exit_code: null, command: null, image: 'busybox', created_at: '2026-11-21T11:00:00.000Z' });
    expect(jobTable([job(), other], now).split('\n')).toEqual([
      'ID                                    STATUS   EXIT  AGE  IMAGE                   COMMAND',
      "0f8fad5b-d9cb-469f-a165-70867728950e  failed   3     1m   flashpods/busybox:test  sh -c 'echo out; exit 3'",
      '11111111-2222-3333-4444-555555555555  running  -     1h   busybox                 ',
      '',
    ]);
  });

  it('clips long commands', () => {
    const line = jobTable([job({ command: ['sh', '-c', 'x'.repeat(100)] })], 0).split('\n')[1];
    expect(line.endsWith('…')).toBe(true);
    expect(line.split('  ').pop()!.length).toBe(50);
  });

  it('is a header only without jobs', () => {
    expect(jobTable([], 0)).toBe('ID  STATUS  EXIT  AGE  IMAGE  COMMAND\n');
  });
});

describe('jobDetail', () => {
  it('shows the fields that are set, one a line, and no secret value', () => {
    expect(jobDetail(job()).split('\n')).toEqual([
      'id         0f8fad5b-d9cb-469f-a165-70867728950e',
      'status     failed',
      'exit code  3',
      'error      nonzero_exit: exited with code 3',
      'image      flashpods/busybox:test',
      "command    sh -c 'echo out; exit 3'",
      'labels     team=x',
      'env        A',
      'secrets    TOKEN',
      'timeout    60s',
      'limits     memory 512 MB, cpus 1, pids 256',
      'tenant     admin',
      'runner     r1',
      'created    2026-11-21T11:59:00.000Z',
      'started    2026-11-21T11:59:01.000Z',
      'running    2026-11-21T11:59:02.000Z',
      'finished   2026-11-21T11:59:03.000Z',
      'log        4 lines, 100 bytes',
      '',
    ]);
  });

  it('leaves out what is empty and says truncated', () => {
    const text = jobDetail(job({ exit_code: null, error: null, labels: {}, env: {}, secrets: [], runner_id: null, log: { bytes: 9, lines: 1, truncated: true, mode: 'durable', lines_lost: false } }));
    expect(text).not.toMatch(/^(exit code|error|labels|env|secrets|runner) /m);
    expect(text).toMatch(/^log +1 lines, 9 bytes, truncated$/m);
  });

  it('says fast mode, and loudly when lines were lost', () => {
    expect(jobDetail(job({ log: { bytes: 9, lines: 1, truncated: false, mode: 'fast', lines_lost: false } }))).toMatch(/^log +1 lines, 9 bytes, fast mode$/m);
    expect(jobDetail(job({ log: { bytes: 9, lines: 1, truncated: false, mode: 'fast', lines_lost: true } }))).toMatch(
      /^log +1 lines, 9 bytes, fast mode, LINES LOST \(output not captured while no runner was attached\)$/m,
    );
  });
});
