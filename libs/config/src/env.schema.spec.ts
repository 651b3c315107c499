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

describe('Redis Cluster configuration', () => {
  it('REDIS_CLUSTER_NODES gives the nodes; a one-server REDIS_URL alone gives no cluster', () => {
    expect(loadConfig({}).redis.cluster).toBeUndefined();
    expect(loadConfig({ REDIS_URL: 'redis://10.0.0.5:6380' }).redis.cluster).toBeUndefined();
    expect(loadConfig({ REDIS_CLUSTER_NODES: '127.0.0.1:7101, redis-2:7102,[::1]:7103' }).redis.cluster).toEqual({
      nodes: [
        { host: '127.0.0.1', port: 7101 },
        { host: 'redis-2', port: 7102 },
        { host: '::1', port: 7103 },
      ],
      username: undefined,
      password: undefined,
    });
  });

  it('a redis+cluster:// URL gives the nodes and the credentials', () => {
    expect(loadConfig({ REDIS_URL: 'redis+cluster://app:s%40cret@r1:7000,r2:7001' }).redis.cluster).toEqual({
      nodes: [
        { host: 'r1', port: 7000 },
        { host: 'r2', port: 7001 },
      ],
      username: 'app',
      password: 's@cret',
    });
    // REDIS_CLUSTER_NODES wins for the nodes; the URL still gives the password.
    expect(loadConfig({ REDIS_URL: 'redis://:pw@ignored:1', REDIS_CLUSTER_NODES: 'a:1' }).redis.cluster).toEqual({
      nodes: [{ host: 'a', port: 1 }],
      username: undefined,
      password: 'pw',
    });
  });

  it.each([
    ['REDIS_CLUSTER_NODES', '127.0.0.1', /REDIS_CLUSTER_NODES: "127.0.0.1" is not host:port/],
    ['REDIS_CLUSTER_NODES', 'a:1,,b:2', /REDIS_CLUSTER_NODES: "" is not host:port/],
    ['REDIS_CLUSTER_NODES', 'a:70000', /REDIS_CLUSTER_NODES: "a:70000" is not host:port/],
    ['REDIS_CLUSTER_NODES', ' ', /REDIS_CLUSTER_NODES: expected host:port,host:port/],
    ['REDIS_URL', 'redis+cluster://r1', /REDIS_URL: "r1" is not host:port/],
    ['REDIS_URL', 'http://r1:6379', /REDIS_URL: expected redis:\/\/, rediss:\/\/ or redis\+cluster:\/\//],
    ['REDIS_URL', 'not a url', /REDIS_URL: Invalid url/],
  ])('%s=%j is refused with a message naming it', (name, value, message) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(message);
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

describe('RUNNER_LOG_MODE', () => {
  it('defaults to durable; fast is taken', () => {
    expect(loadConfig({}).runner.logMode).toBe('durable');
    expect(loadConfig({ RUNNER_LOG_MODE: 'fast' }).runner.logMode).toBe('fast');
    expect(loadConfig({ RUNNER_LOG_MODE: 'durable' }).runner.logMode).toBe('durable');
  });

  it('refuses anything else, naming the variable and both values', () => {
    expect(() => loadConfig({ RUNNER_LOG_MODE: 'FAST' })).toThrow(/RUNNER_LOG_MODE: expected durable .* or fast/);
    expect(() => loadConfig({ RUNNER_LOG_MODE: 'none' })).toThrow(ConfigError);
  });

  it('refuses fast with the process executor, which has no log driver', () => {
    expect(() => loadConfig({ RUNNER_LOG_MODE: 'fast', RUNNER_EXECUTOR: 'process' })).toThrow(/RUNNER_LOG_MODE: fast is a Docker log-driver option/);
    expect(loadConfig({ RUNNER_EXECUTOR: 'process' }).runner.logMode).toBe('durable');
  });
});
