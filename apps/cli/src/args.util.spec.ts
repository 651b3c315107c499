import { CliError } from './cli-error';
import { ExitCode } from './exit-codes';
import { jobId, keyValues, parseKeyValue, parsePositiveInt, parsePositiveNumber, parseSince, parseStream } from './args.util';

const usage = (fn: () => unknown, message: RegExp) => {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(CliError);
  expect((caught as CliError).exitCode).toBe(ExitCode.Usage);
  expect((caught as CliError).message).toMatch(message);
};

describe('parseKeyValue', () => {
  it('splits at the first =, keeping empty values and later = signs', () => {
    expect(parseKeyValue('A=1', '--env')).toEqual(['A', '1']);
    expect(parseKeyValue('A=', '--env')).toEqual(['A', '']);
    expect(parseKeyValue('URL=postgres://u@h/db?x=1', '--env')).toEqual(['URL', 'postgres://u@h/db?x=1']);
    expect(parseKeyValue('k.io/x=a b', '--label')).toEqual(['k.io/x', 'a b']);
  });

  it('refuses an empty name', () => {
    usage(() => parseKeyValue('=1', '--env'), /^--env =1: the name before '=' is empty$/);
  });

  it('takes a bare name from the environment when one is given, and only then', () => {
    expect(parseKeyValue('TOKEN', '--secret', { TOKEN: 's3cret' })).toEqual(['TOKEN', 's3cret']);
    expect(parseKeyValue('EMPTY', '--env', { EMPTY: '' })).toEqual(['EMPTY', '']);
    usage(() => parseKeyValue('TOKEN', '--secret', {}), /^--secret TOKEN: expected K=V, or K set in this environment$/);
    usage(() => parseKeyValue('team', '--label'), /^--label team: expected key=value$/);
  });
});

describe('keyValues', () => {
  it('is undefined without entries, so the body leaves the field out', () => {
    expect(keyValues([], '--env')).toBeUndefined();
  });

  it('builds one object; a later key wins', () => {
    expect(keyValues(['A=1', 'B=2', 'A=3'], '--env')).toEqual({ A: '3', B: '2' });
  });
});

describe('numbers', () => {
  it('parsePositiveInt takes digits only, at least 1', () => {
    expect(parsePositiveInt('1', '--timeout')).toBe(1);
    expect(parsePositiveInt('3600', '--timeout')).toBe(3600);
    for (const bad of ['0', '-1', '1.5', '1e3', '', ' 2', 'ten', '99999999999999999999']) {
      usage(() => parsePositiveInt(bad, '--timeout'), new RegExp(`^--timeout ${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: expected a positive integer$`));
    }
  });

  it('parsePositiveNumber takes decimals above 0', () => {
    expect(parsePositiveNumber('0.5', '--cpus')).toBe(0.5);
    expect(parsePositiveNumber('2', '--cpus')).toBe(2);
    expect(parsePositiveNumber('.25', '--cpus')).toBe(0.25);
    for (const bad of ['0', '0.0', '-1', 'x', '1e2', '']) usage(() => parsePositiveNumber(bad, '--cpus'), /expected a positive number$/);
  });
});

describe('parseSince', () => {
  const now = Date.UTC(2026, 10, 21, 12, 0, 0);

  it('takes durations back from now, combined units included', () => {
    expect(parseSince('90s', now)).toBe(now - 90_000);
    expect(parseSince('10m', now)).toBe(now - 600_000);
    expect(parseSince('2h', now)).toBe(now - 7_200_000);
    expect(parseSince('1d', now)).toBe(now - 86_400_000);
    expect(parseSince('1h30m', now)).toBe(now - 5_400_000);
    expect(parseSince('250ms', now)).toBe(now - 250);
  });

  it('takes epoch milliseconds and ISO times as they are', () => {
    expect(parseSince('1700000000000', now)).toBe(1_700_000_000_000);
    expect(parseSince('2026-11-21T11:00:00Z', now)).toBe(Date.UTC(2026, 10, 21, 11));
    expect(parseSince('2026-11-21T11:00:00.250+01:00', now)).toBe(Date.UTC(2026, 10, 21, 10, 0, 0, 250));
  });

  it('refuses what is neither', () => {
    for (const bad of ['yesterday', 'm', '10x', '1h 30m', '-10m', '2026-13-45T00:00:00Z', 'March 3']) {
      usage(() => parseSince(bad, now), /^--since .*: expected an ISO time, epoch ms, or a duration such as 10m$/);
    }
  });
});

describe('parseStream', () => {
  it('takes the three stream names and nothing else', () => {
    expect(parseStream('stdout')).toBe('stdout');
    expect(parseStream('stderr')).toBe('stderr');
    expect(parseStream('system')).toBe('system');
    usage(() => parseStream('both'), /^--stream both: expected stdout, stderr or system$/);
  });
});

describe('jobId', () => {
  it('takes a UUID, lower-cased', () => {
    expect(jobId('0F8FAD5B-D9CB-469F-A165-70867728950E')).toBe('0f8fad5b-d9cb-469f-a165-70867728950e');
  });

  it('refuses anything that could name another path', () => {
    for (const bad of ['..', '../tokens', '0f8fad5b-d9cb-469f-a165-70867728950e/../../tokens', '%2e%2e', '', '0f8fad5b']) {
      usage(() => jobId(bad), /: not a job id \(job ids are UUIDs, as flashpods ls shows them\)$/);
    }
  });
});
