import { LogMode } from '@flashpods/contracts';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { envSchema, parseClusterUrl, parseRedisNodes, REDIS_CLUSTER_SCHEME, RedisNode } from './env.schema';

/** The typed, validated configuration every service reads. Built once per process. */
export interface FlashpodsConfig {
  redis: {
    url: string;
    prefix: string;
    /** Set when Redis is a Redis Cluster (REDIS_CLUSTER_NODES, or a `redis+cluster://` REDIS_URL). */
    cluster?: { nodes: RedisNode[]; username?: string; password?: string };
  };
  databaseUrl: string;
  logs: {
    dir: string;
    maxBytes: number;
    lineMaxBytes: number;
    totalMaxBytes: number;
    retentionSeconds: number;
  };
  jobs: {
    retentionDays: number;
    timeoutDefaultSeconds: number;
    timeoutMaxSeconds: number;
    memoryMbDefault: number;
    memoryMbMax: number;
    cpusDefault: number;
    cpusMax: number;
    pidsDefault: number;
    pidsMax: number;
    networkAllowed: boolean;
    maxEnvEntries: number;
    maxLabels: number;
  };
  janitor: {
    intervalSeconds: number;
    /** How often the liveness sweep runs. */
    livenessIntervalSeconds: number;
    /** A job still active this long after its timeout is ended by the liveness sweep as `timed_out`. */
    timeoutGraceSeconds: number;
    /** A `pending` job this old with no queue entry is enqueued again. */
    pendingGraceSeconds: number;
  };
  runner: {
    id: string;
    concurrency: number;
    executor: 'docker' | 'process';
    /** How containers' output is captured: see {@link LogMode}. */
    logMode: LogMode;
    shutdownGraceSeconds: number;
    heartbeatSeconds: number;
    dockerHost?: string;
    pullTimeoutSeconds: number;
  };
  stream: { chunkMaxBytes: number; chunkMaxDelayMs: number; maxUnpersistedEntries: number };
  persister: { claimIdleMs: number };
  api: {
    port: number;
    host: string;
    bodyLimitBytes: number;
    adminToken?: string;
    rateLimitPerMinute: number;
    corsOrigins: string[];
    /** A comment line on every open log stream this often, so proxies keep it open. */
    sseHeartbeatMs: number;
    /** Bytes a live-log client may have unsent before it is fed from memory or the file at its own pace. */
    sseClientBufferBytes: number;
  };
  logFormat: 'json' | 'text';
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  metrics: {
    /** 0: no metrics endpoint (the API serves /metrics on its own port whatever this says). */
    port: number;
    host: string;
    /** Gauges that need Postgres are refreshed this often, never per scrape. */
    refreshSeconds: number;
  };
}

export class ConfigError extends Error {}

/** Validates `env`; throws a ConfigError naming every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): FlashpodsConfig {
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = envSchema.safeParse(cleaned);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`Invalid environment: ${problems.join('; ')}`);
  }
  const e = parsed.data;
  if (e.JOB_TIMEOUT_DEFAULT_SECONDS > e.JOB_TIMEOUT_MAX_SECONDS) {
    throw new ConfigError('Invalid environment: JOB_TIMEOUT_DEFAULT_SECONDS: exceeds JOB_TIMEOUT_MAX_SECONDS');
  }
  if (e.RUNNER_LOG_MODE === 'fast' && e.RUNNER_EXECUTOR === 'process') {
    // A child process dies with its runner: there is nothing to re-attach to, in either mode.
    throw new ConfigError('Invalid environment: RUNNER_LOG_MODE: fast is a Docker log-driver option; RUNNER_EXECUTOR=process has no log driver');
  }
  return Object.freeze({
    redis: { url: e.REDIS_URL, prefix: e.REDIS_PREFIX, cluster: clusterOf(e.REDIS_URL, e.REDIS_CLUSTER_NODES) },
    databaseUrl: e.DATABASE_URL,
    logs: {
      dir: resolve(e.LOG_DIR),
      maxBytes: e.LOG_MAX_BYTES,
      lineMaxBytes: e.LOG_LINE_MAX_BYTES,
      totalMaxBytes: e.LOG_TOTAL_MAX_BYTES,
      retentionSeconds: e.LOG_RETENTION_SECONDS,
    },
    jobs: {
      retentionDays: e.JOB_RETENTION_DAYS,
      timeoutDefaultSeconds: e.JOB_TIMEOUT_DEFAULT_SECONDS,
      timeoutMaxSeconds: e.JOB_TIMEOUT_MAX_SECONDS,
      memoryMbDefault: e.JOB_MEMORY_MB_DEFAULT,
      memoryMbMax: e.JOB_MEMORY_MB_MAX,
      cpusDefault: e.JOB_CPUS_DEFAULT,
      cpusMax: e.JOB_CPUS_MAX,
      pidsDefault: e.JOB_PIDS_DEFAULT,
      pidsMax: e.JOB_PIDS_MAX,
      networkAllowed: e.JOB_NETWORK_ALLOWED,
      maxEnvEntries: e.JOB_MAX_ENV_ENTRIES,
      maxLabels: e.JOB_MAX_LABELS,
    },
    janitor: {
      intervalSeconds: e.JANITOR_INTERVAL_SECONDS,
      livenessIntervalSeconds: e.LIVENESS_INTERVAL_SECONDS,
      timeoutGraceSeconds: e.LIVENESS_TIMEOUT_GRACE_SECONDS,
      pendingGraceSeconds: e.LIVENESS_PENDING_GRACE_SECONDS,
    },
    runner: {
      // Stable across restarts, so a restarted runner finds its containers again.
      id: e.RUNNER_ID ?? hostname(),
      concurrency: e.RUNNER_CONCURRENCY,
      executor: e.RUNNER_EXECUTOR,
      logMode: e.RUNNER_LOG_MODE === 'fast' ? LogMode.Fast : LogMode.Durable,
      shutdownGraceSeconds: e.RUNNER_SHUTDOWN_GRACE_SECONDS,
      heartbeatSeconds: e.RUNNER_HEARTBEAT_SECONDS,
      dockerHost: e.DOCKER_HOST,
      pullTimeoutSeconds: e.DOCKER_PULL_TIMEOUT_SECONDS,
    },
    stream: {
      chunkMaxBytes: e.STREAM_CHUNK_MAX_BYTES,
      chunkMaxDelayMs: e.STREAM_CHUNK_MAX_DELAY_MS,
      maxUnpersistedEntries: e.STREAM_MAX_UNPERSISTED_ENTRIES,
    },
    persister: { claimIdleMs: e.PERSISTER_CLAIM_IDLE_MS },
    api: {
      port: e.API_PORT,
      host: e.API_HOST,
      bodyLimitBytes: e.API_BODY_LIMIT_BYTES,
      adminToken: e.FLASHPODS_ADMIN_TOKEN,
      rateLimitPerMinute: e.API_RATE_LIMIT_PER_MINUTE,
      corsOrigins: e.API_CORS_ORIGINS ? e.API_CORS_ORIGINS.split(',').map((o) => o.trim()).filter(Boolean) : [],
      sseHeartbeatMs: e.API_SSE_HEARTBEAT_MS,
      sseClientBufferBytes: e.API_SSE_CLIENT_BUFFER_BYTES,
    },
    logFormat: e.LOG_FORMAT,
    logLevel: e.LOG_LEVEL,
    metrics: { port: e.METRICS_PORT, host: e.METRICS_HOST, refreshSeconds: e.METRICS_REFRESH_SECONDS },
  });
}

/**
 * The cluster REDIS_CLUSTER_NODES or a `redis+cluster://` REDIS_URL names. With both, the nodes
 * come from REDIS_CLUSTER_NODES and the credentials (if any) from the URL, whatever its scheme.
 */
function clusterOf(url: string, nodes: string | undefined): FlashpodsConfig['redis']['cluster'] {
  const fromUrl = url.startsWith(REDIS_CLUSTER_SCHEME) ? parseClusterUrl(url) : undefined;
  if (nodes === undefined) return fromUrl;
  const auth = fromUrl ?? new URL(url);
  return {
    nodes: parseRedisNodes(nodes),
    username: auth.username ? decodeURIComponent(auth.username) : undefined,
    password: auth.password ? decodeURIComponent(auth.password) : undefined,
  };
}

/** Where Redis is, for messages: `host:port`, or the cluster's nodes. */
export function describeRedis(config: FlashpodsConfig): string {
  const c = config.redis.cluster;
  return c ? `cluster ${c.nodes.map((n) => `${n.host}:${n.port}`).join(',')}` : new URL(config.redis.url).host;
}

let cached: FlashpodsConfig | undefined;

/** The process's configuration, validated on first use. */
export function getConfig(): FlashpodsConfig {
  cached ??= loadConfig();
  return cached;
}
