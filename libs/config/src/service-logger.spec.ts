import { Writable } from 'node:stream';
import { loadConfig } from './flashpods.config';
import { createServiceLogger, jobIdOfMessage, redactUrl } from './service-logger';

const JOB = '6befaeee-c39d-47d2-bd54-3e02cc8d8824';

/** A logger writing JSON lines into an array. */
function capture(service: string, env: Record<string, string> = {}) {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l));
      done();
    },
  });
  const logger = createServiceLogger(loadConfig({ LOG_FORMAT: 'json', RUNNER_ID: 'r-1', ...env }), service, sink);
  return { logger, lines };
}

describe('service logger', () => {
  it('writes JSON lines with the service, a level name, an ISO time and the message', () => {
    const { logger, lines } = capture('persister');
    logger.warn('disk almost full');
    expect(lines).toEqual([expect.objectContaining({ service: 'persister', level: 'warn', msg: 'disk almost full' })]);
    expect(Number.isNaN(Date.parse(lines[0].time as string))).toBe(false);
    expect(lines[0]).not.toHaveProperty('runner_id');
  });

  it('adds runner_id on every runner line', () => {
    const { logger, lines } = capture('runner');
    logger.info('ready');
    expect(lines[0]).toMatchObject({ service: 'runner', runner_id: 'r-1' });
  });

  it('takes job_id from a message naming `job <uuid>`, with or without fields, and keeps one passed explicitly', () => {
    const { logger, lines } = capture('runner');
    logger.info(`job ${JOB.toUpperCase()} completed (exit 0)`);
    logger.info({ context: 'JobRunnerService' }, `took job ${JOB} with fence 3`);
    logger.info({ job_id: 'given' }, `job ${JOB} resumed`);
    logger.info(`resumed 2 job(s) left by a previous run`);
    expect(lines.map((l) => l.job_id)).toEqual([JOB, JOB, 'given', undefined]);
    expect(lines[1].context).toBe('JobRunnerService');
  });

  it("keeps Nest's start-up chatter (module and route lines) for LOG_LEVEL=debug", () => {
    const quiet = capture('api');
    quiet.logger.info({ context: 'RouterExplorer' }, 'Mapped {/jobs, POST} route');
    quiet.logger.info({ context: 'JobsService' }, 'something of ours');
    expect(quiet.lines.map((l) => l.msg)).toEqual(['something of ours']);
    const verbose = capture('api', { LOG_LEVEL: 'debug' });
    verbose.logger.info({ context: 'RouterExplorer' }, 'Mapped {/jobs, POST} route');
    expect(verbose.lines).toEqual([expect.objectContaining({ level: 'debug', msg: 'Mapped {/jobs, POST} route' })]);
  });

  it('honours LOG_LEVEL', () => {
    const { logger, lines } = capture('janitor', { LOG_LEVEL: 'warn' });
    logger.info('sweep done');
    logger.error('sweep failed');
    expect(lines.map((l) => l.level)).toEqual(['error']);
  });
});

describe('jobIdOfMessage', () => {
  it('finds the id after "job", lower-cased, and nothing else', () => {
    expect(jobIdOfMessage(`dropped job ${JOB} (fence 2)`)).toBe(JOB);
    expect(jobIdOfMessage(`job ${JOB}: could not end it`)).toBe(JOB);
    expect(jobIdOfMessage(`container ${JOB} removed`)).toBeUndefined();
    expect(jobIdOfMessage(`job ${JOB.slice(0, 30)}`)).toBeUndefined();
  });
});

describe('redactUrl', () => {
  it('hides credentials in the query string, and only them', () => {
    expect(redactUrl(`/jobs/${JOB}/logs/stream?ticket=abc.def&after_seq=3`)).toBe(`/jobs/${JOB}/logs/stream?ticket=[REDACTED]&after_seq=3`);
    expect(redactUrl('/jobs?access_token=secret-token-123')).toBe('/jobs?access_token=[REDACTED]');
    expect(redactUrl('/jobs?status=running&TOKEN=x')).toBe('/jobs?status=running&TOKEN=[REDACTED]');
    expect(redactUrl('/jobs?status=running')).toBe('/jobs?status=running');
  });
});
