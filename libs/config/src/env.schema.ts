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

/**
 * Every environment variable Flashpods reads, with its default. The README's table is
 * generated from reading this file: keep the two in step.
 */
export const envSchema = z.object({
  REDIS_URL: z.string().url().default('redis://127.0.0.1:6379'),
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
  STREAM_CHUNK_MAX_DELAY_MS: int(50, 1),
  STREAM_MAX_UNPERSISTED_ENTRIES: int(512, 8),
  PERSISTER_CLAIM_IDLE_MS: int(15000, 1000),
  LOG_FORMAT: z.enum(['json', 'text']).default('text'),
});

export type Env = z.infer<typeof envSchema>;
