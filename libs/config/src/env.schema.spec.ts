import { JOB_TIMEOUT_MAX_SECONDS_LIMIT } from './env.schema';
import { ConfigError, loadConfig } from './flashpods.config';

describe('JOB_TIMEOUT_MAX_SECONDS', () => {
  it('is bounded where a Node timer still fires on time (2^31-1 ms)', () => {
    expect(JOB_TIMEOUT_MAX_SECONDS_LIMIT * 1000).toBeLessThanOrEqual(2 ** 31 - 1);
    expect((JOB_TIMEOUT_MAX_SECONDS_LIMIT + 1) * 1000).toBeGreaterThan(2 ** 31 - 1);
  });

  it('accepts the largest value and refuses one more, naming the variable', () => {
    const max = String(JOB_TIMEOUT_MAX_SECONDS_LIMIT);
    expect(loadConfig({ JOB_TIMEOUT_MAX_SECONDS: max }).jobs.timeoutMaxSeconds).toBe(JOB_TIMEOUT_MAX_SECONDS_LIMIT);
    expect(() => loadConfig({ JOB_TIMEOUT_MAX_SECONDS: String(JOB_TIMEOUT_MAX_SECONDS_LIMIT + 1) })).toThrow(ConfigError);
    expect(() => loadConfig({ JOB_TIMEOUT_MAX_SECONDS: String(JOB_TIMEOUT_MAX_SECONDS_LIMIT + 1) })).toThrow(/JOB_TIMEOUT_MAX_SECONDS/);
    expect(() => loadConfig({ JOB_TIMEOUT_MAX_SECONDS: '99999999999' })).toThrow(/JOB_TIMEOUT_MAX_SECONDS/);
  });

  it('bounds the default the same way', () => {
    expect(() =>
      loadConfig({ JOB_TIMEOUT_DEFAULT_SECONDS: String(JOB_TIMEOUT_MAX_SECONDS_LIMIT + 1), JOB_TIMEOUT_MAX_SECONDS: String(JOB_TIMEOUT_MAX_SECONDS_LIMIT) }),
    ).toThrow(/JOB_TIMEOUT_DEFAULT_SECONDS/);
  });
});

describe('METRICS_PORT, METRICS_REFRESH_SECONDS and LOG_LEVEL', () => {
  it('default to no metrics endpoint, a 15 s refresh and info', () => {
    const c = loadConfig({});
    expect([c.metrics, c.logLevel]).toEqual([{ port: 0, host: '0.0.0.0', refreshSeconds: 15 }, 'info']);
  });

  it('refuse what is not a port, a refresh under 1 s, or an unknown level, naming the variable', () => {
    expect(() => loadConfig({ METRICS_PORT: '70000' })).toThrow(/METRICS_PORT/);
    expect(() => loadConfig({ METRICS_PORT: 'nine' })).toThrow(/METRICS_PORT/);
    expect(() => loadConfig({ METRICS_REFRESH_SECONDS: '0' })).toThrow(/METRICS_REFRESH_SECONDS/);
    expect(() => loadConfig({ LOG_LEVEL: 'verbose' })).toThrow(/LOG_LEVEL/);
    expect(loadConfig({ METRICS_PORT: '9464', LOG_LEVEL: 'debug' })).toMatchObject({ metrics: { port: 9464 }, logLevel: 'debug' });
  });
});
