import { z } from 'zod';

const int = (def: number, min = 0, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max).default(def);

/**
 * The longest job timeout a runner can arm: Node's timers hold at most 2^31-1 ms (24.8 days) and
 * fire at once, not late, past it. Whole seconds at or below that.
 */
export const JOB_TIMEOUT_MAX_SECONDS_LIMIT = Math.floor((2 ** 31 - 1) / 1000);
const bool = (def: boolean) =>
  z
    .enum(['true', 'false', '1', '0'])
    .default(def ? 'true' : 'false')
    .transform((v) => v === 'true' || v === '1');

/** `redis+cluster://[user:password@]host:port,host:port,...`: a Redis Cluster, given by some of its nodes. */
export const REDIS_CLUSTER_SCHEME = 'redis+cluster://';

export interface RedisNode {
  host: string;
  port: number;
}

/**
 * `host:port,host:port,...` (an IPv6 host in brackets: `[::1]:7000`) as a list of nodes; throws
 * an Error saying which entry is wrong.
 */
export function parseRedisNodes(list: string): RedisNode[] {
  const entries = list.split(',').map((e) => e.trim());
  if (entries.length === 0 || entries.every((e) => e === '')) throw new Error('expected host:port,host:port,... (at least one node)');
  return entries.map((entry) => {
    const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9_.-]+)):(\d{1,5})$/.exec(entry);
    const port = m ? Number(m[3]) : NaN;
    if (!m || port < 1 || port > 65535) throw new Error(`"${entry}" is not host:port`);
    return { host: m[1] ?? m[2], port };
  });
}

/** The credentials and nodes of a `redis+cluster://` URL. */
export function parseClusterUrl(url: string): { nodes: RedisNode[]; username?: string; password?: string } {
  const rest = url.slice(REDIS_CLUSTER_SCHEME.length).replace(/\/+$/, '');
  const at = rest.lastIndexOf('@');
  const auth = at === -1 ? '' : rest.slice(0, at);
  const colon = auth.indexOf(':');
  const username = decodeURIComponent(colon === -1 ? auth : auth.slice(0, colon)) || undefined;
  const password = colon === -1 ? undefined : decodeURIComponent(auth.slice(colon + 1)) || undefined;
  return { nodes: parseRedisNodes(rest.slice(at + 1)), username, password };
}

const redisUrl = z
  .string()
  .default('redis://127.0.0.1:6379')
  .superRefine((v, ctx) => {
    try {
      if (v.startsWith(REDIS_CLUSTER_SCHEME)) parseClusterUrl(v);
      else if (!['redis:', 'rediss:'].includes(new URL(v).protocol)) throw new Error('expected redis://, rediss:// or redis+cluster://');
    } catch (err) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: (err as NodeJS.ErrnoException).code === 'ERR_INVALID_URL' ? 'Invalid url' : (err as Error).message });
    }
  });

const redisClusterNodes = z
  .string()
  .optional()
  .superRefine((v, ctx) => {
    if (v === undefined) return;
    try {
      parseRedisNodes(v);
    } catch (err) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: (err as Error).message });
    }
  });

/**
 * Every environment variable Flashpods reads, with its default. The README's table is
 * generated from reading this file: keep the two in step.
 */
export const envSchema = z.object({
  REDIS_URL: redisUrl,
  /** Nodes of a Redis Cluster (some are enough: the rest are discovered). Set, it wins over REDIS_URL's host. */
  REDIS_CLUSTER_NODES: redisClusterNodes,
  REDIS_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _ . - only')
    .default('fp'),
  DATABASE_URL: z.string().url().default('postgres://postgres@127.0.0.1:5432/flashpods'),
  LOG_DIR: z.string().min(1).default('./data/logs'),
  LOG_MAX_BYTES: int(50 * 1024 * 1024, 1024),
  LOG_LINE_MAX_BYTES: int(1024 * 1024, 1024),
  LOG_TOTAL_MAX_BYTES: int(10 * 1024 * 1024 * 1024, 1),
  LOG_RETENTION_SECONDS: int(24 * 3600, 0),
  JOB_RETENTION_DAYS: z.coerce.number().min(0).default(30),
  JANITOR_INTERVAL_SECONDS: int(300, 1),
  LIVENESS_INTERVAL_SECONDS: int(5, 1),
  LIVENESS_TIMEOUT_GRACE_SECONDS: int(30, 0),
  LIVENESS_PENDING_GRACE_SECONDS: int(10, 1),
  RUNNER_CONCURRENCY: int(2, 1),
  RUNNER_EXECUTOR: z.enum(['docker', 'process']).default('docker'),
  /**
   * `durable` (default): the daemon keeps a copy of each container's output, a restarted runner
   * replays it, no line is lost. `fast`: no daemon copy (the `none` log driver), faster ingest, but
   * output written while no runner is attached is lost, and the job says so. Docker executor only.
   */
  RUNNER_LOG_MODE: z.enum(['durable', 'fast'], {
    errorMap: () => ({ message: 'expected durable (the default: every line survives a runner crash) or fast (no daemon copy: a runner crash loses output)' }),
  }).default('durable'),
  RUNNER_ID: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _ . - only').optional(),
  RUNNER_SHUTDOWN_GRACE_SECONDS: int(30, 0),
  RUNNER_HEARTBEAT_SECONDS: int(5, 1),
  DOCKER_HOST: z.string().optional(),
  DOCKER_PULL_TIMEOUT_SECONDS: int(300, 1),
  API_PORT: int(3000, 0),
  API_HOST: z.string().default('0.0.0.0'),
  API_BODY_LIMIT_BYTES: int(256 * 1024, 1024),
  API_RATE_LIMIT_PER_MINUTE: int(600, 1),
  API_CORS_ORIGINS: z.string().optional(),
  API_SSE_HEARTBEAT_MS: int(15000, 100),
  API_SSE_CLIENT_BUFFER_BYTES: int(64 * 1024, 1024),
  JOB_MAX_ENV_ENTRIES: int(64, 0),
  JOB_MAX_LABELS: int(32, 0),
  FLASHPODS_ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  JOB_TIMEOUT_DEFAULT_SECONDS: int(3600, 1, JOB_TIMEOUT_MAX_SECONDS_LIMIT),
  JOB_TIMEOUT_MAX_SECONDS: int(24 * 3600, 1, JOB_TIMEOUT_MAX_SECONDS_LIMIT),
  JOB_MEMORY_MB_DEFAULT: int(512, 6),
  JOB_MEMORY_MB_MAX: int(8192, 6),
  JOB_CPUS_DEFAULT: z.coerce.number().positive().default(1),
  JOB_CPUS_MAX: z.coerce.number().positive().default(4),
  JOB_PIDS_DEFAULT: int(256, 1),
  JOB_PIDS_MAX: int(4096, 1),
  JOB_NETWORK_ALLOWED: bool(false),
  STREAM_CHUNK_MAX_BYTES: int(64 * 1024, 1024),
  STREAM_CHUNK_MAX_DELAY_MS: int(20, 1),
  STREAM_MAX_UNPERSISTED_ENTRIES: int(512, 8),
  PERSISTER_CLAIM_IDLE_MS: int(15000, 1000),
  LOG_FORMAT: z.enum(['json', 'text']).default('text'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Runner, persister, janitor: where /metrics is served; 0 (the default) serves none. The API serves it on API_PORT. */
  METRICS_PORT: int(0, 0, 65535),
  METRICS_HOST: z.string().min(1).default('0.0.0.0'),
  /** How often gauges that need a Postgres query are refreshed (never on a scrape). */
  METRICS_REFRESH_SECONDS: int(15, 1),
});

export type Env = z.infer<typeof envSchema>;
