import { FlashpodsConfig } from '@flashpods/config';
import { JobErrorCode, JobStatus, LOG_KEEP_VALUES, LOG_LEVEL_NAMES, LOG_MODE_VALUES, LOG_STREAM_NAMES } from '@flashpods/contracts';
import { API_ERROR_CODES, ApiErrorCode } from '../common/api-error-code';
import { createTokenRequestSchema } from '../auth/token.service';
import { createJobRequestSchema } from '../jobs/create-job.schema';
import { JsonSchema, ref } from './json-schema';

const nullable = (schema: JsonSchema): JsonSchema => ({ ...schema, type: [schema.type, 'null'] });
const time = (description: string): JsonSchema => ({ type: 'string', format: 'date-time', description });
const nullableTime = (description: string): JsonSchema => nullable(time(description));
/** Every property required and no other: what the views (`jobView`, `logEntryView`, ...) always send. */
const closed = (description: string, properties: Record<string, JsonSchema>): JsonSchema => ({
  type: 'object',
  description,
  required: Object.keys(properties),
  additionalProperties: false,
  properties,
});

/** A closed schema with more properties that are sent only sometimes. */
const withOptional = (schema: JsonSchema, optional: Record<string, JsonSchema>): JsonSchema => ({
  ...schema,
  properties: { ...(schema.properties as Record<string, JsonSchema>), ...optional },
});

const TOKEN_PROPERTIES: Record<string, JsonSchema> = {
  id: { type: 'string', format: 'uuid' },
  tenant: { type: 'string' },
  name: { type: 'string' },
  created_at: time('When it was created.'),
  revoked_at: nullableTime('When it was revoked; it opens nothing since.'),
};

export const LOG_STREAMS = Object.values(LOG_STREAM_NAMES);
export const LOG_LEVELS = Object.values(LOG_LEVEL_NAMES);

/**
 * The named schemas of the OpenAPI document: the request bodies as validated (built from the
 * bounds the validators use, with this deployment's maximums) and the responses as the views
 * build them. The e2e harness validates every response it receives against these.
 */
export function componentSchemas(config: FlashpodsConfig): Record<string, JsonSchema> {
  return {
    Error: closed('Every error: a machine-readable code and a human message.', {
      error: { type: 'string', enum: [...API_ERROR_CODES], description: 'What went wrong; the status and operation say which codes can occur.' },
      message: { type: 'string' },
    }),
    JobStatus: {
      type: 'string',
      enum: Object.values(JobStatus),
      description:
        '`pending → starting → running → completed | failed | timed_out | cancelled`; any of the last four `→ cleaned` once the janitor deleted its logs.',
    },
    JobError: closed('Why a job failed.', {
      code: { type: 'string', enum: Object.values(JobErrorCode) },
      message: { type: 'string' },
    }),
    LogSummary: closed('What the job has logged so far.', {
      bytes: { type: 'integer', minimum: 0 },
      lines: { type: 'integer', minimum: 0 },
      truncated: { type: 'boolean', description: 'The log reached `LOG_MAX_BYTES`; capture stopped at a marker line.' },
      mode: {
        type: ['string', 'null'],
        enum: [...LOG_MODE_VALUES, null],
        description:
          'How the runner that took the job captured its output (`RUNNER_LOG_MODE`); `null` until a runner takes it. `durable`: the Docker daemon kept a copy, so a runner crash loses nothing. `fast`: no daemon copy, so output written while no runner was attached is lost (see `lines_lost`).',
      },
      lines_lost: {
        type: 'boolean',
        description:
          'The log has a gap: a fast-mode runner restarted, and what the container wrote while no runner was attached was not captured. A `system` line at the gap says between which times. Lines before and after it are stored once and in order.',
      },
    }),
    Limits: closed('Container limits in force.', {
      memory_mb: { type: 'integer' },
      cpus: { type: 'number' },
      pids: { type: 'integer' },
    }),
    Job: closed('A job. Secret values are never shown: `secrets` lists their names.', {
      id: { type: 'string', format: 'uuid' },
      tenant: { type: 'string' },
      status: ref('JobStatus'),
      image: { type: 'string' },
      command: { type: ['array', 'null'], items: { type: 'string' }, description: "`null`: the image's default command." },
      env: { type: 'object', additionalProperties: { type: 'string' } },
      secrets: { type: 'array', items: { type: 'string' }, description: 'Names of the secret variables.' },
      labels: { type: 'object', additionalProperties: { type: 'string' } },
      timeout_seconds: { type: 'integer' },
      limits: ref('Limits'),
      network: { type: 'boolean' },
      exit_code: { type: ['integer', 'null'], description: 'The container exit code, once it exited.' },
      error: { oneOf: [ref('JobError'), { type: 'null' }], description: 'Set when the job `failed`.' },
      runner_id: { type: ['string', 'null'], description: 'The runner that ran it.' },
      created_at: time('When it was submitted.'),
      started_at: nullableTime('When a runner took it (`starting`).'),
      running_at: nullableTime('When its container started (`running`).'),
      finished_at: nullableTime('When it reached a terminal status.'),
      cleaned_at: nullableTime('When the janitor deleted its logs (`cleaned`).'),
      log_keep: { type: 'string', enum: [...LOG_KEEP_VALUES], description: 'What a log over its cap keeps: `head`, or `head_tail`.' },
      log: ref('LogSummary'),
    }),
    JobList: closed('A page of jobs, newest first.', {
      jobs: { type: 'array', items: ref('Job') },
      next_cursor: { type: ['string', 'null'], description: 'Pass as `cursor` for the next page; `null` on the last page.' },
    }),
    CreateJobRequest: createJobRequestSchema(config),
    Output: closed('The last `tail` lines of the log file, each `[HH:MM:SS.mmm] text` (UTC).', {
      output: { type: 'string' },
      lines: { type: 'integer', minimum: 0, description: 'Lines in `output`.' },
      truncated: { type: 'boolean', description: 'The log reached its cap.' },
      total_bytes: { type: 'integer', minimum: 0, description: 'Size of the whole log file.' },
    }),
    LogLine: closed('One captured line.', {
      seq: { type: 'integer', minimum: 1, description: 'Sequence number: the order lines were captured in, from 1.' },
      ts: time('When it was captured.'),
      stream: { type: 'string', enum: LOG_STREAMS, description: '`system`: lifecycle lines written by Flashpods.' },
      level: { type: 'string', enum: LOG_LEVELS, description: 'stdout `info`, stderr `error`, unless the line is JSON with a `level`.' },
      line: { type: 'string', description: 'The text, without time prefix or newline; secrets `[MASKED]`.' },
    }),
    LogsPage: withOptional(
      closed('Lines matching the filters after `after_seq`, for polling.', {
        logs: { type: 'array', items: ref('LogLine') },
        next_after_seq: { type: 'integer', minimum: 0, description: 'The last seq examined: pass it as `after_seq` to poll on, even when the filter matched nothing.' },
        job: ref('Job'),
      }),
      {
        dropped: closed('Only on a page of a `head_tail` log that crosses its gap: lines `after_seq + 1` … `after_seq + lines` were not kept (the marker line carries seq `after_seq + 1`).', {
          after_seq: { type: 'integer', minimum: 0 },
          lines: { type: 'integer', minimum: 1 },
        }),
      },
    ),
    LogMatches: closed('The stored lines after `after_seq` that pass the filters, over the whole log.', {
      total: { type: 'integer', minimum: 0, description: 'How many lines match.' },
      seqs: { type: 'array', items: { type: 'integer', minimum: 1 }, description: 'The seqs of the first `limit` of them, in order.' },
      last_seq: { type: 'integer', minimum: 0, description: 'The last seq examined: the end of the stored log when the search began (`after_seq` if nothing was).' },
    }),
    LogTicket: closed("A short-lived, read-only ticket for this job's `logs/stream` and `logs/download` (`?ticket=`).", {
      ticket: { type: 'string', pattern: '^fpt_[A-Za-z0-9_-]{43}$' },
      expires_at: time('After this the ticket opens nothing.'),
    }),
    CreateTokenRequest: createTokenRequestSchema(),
    Token: closed('A tenant token as listed: never the token itself.', TOKEN_PROPERTIES),
    NewToken: closed('A token just created: `token` is shown this once (only its SHA-256 is stored).', {
      ...TOKEN_PROPERTIES,
      token: { type: 'string', pattern: '^fp_[A-Za-z0-9_-]{43}$', description: 'Send as `Authorization: Bearer <token>`.' },
    }),
    TokenList: closed('Every tenant token, newest first, revoked ones included.', {
      tokens: { type: 'array', items: ref('Token') },
    }),
    Health: closed('The process is alive.', { status: { type: 'string', enum: ['ok'] } }),
    Ready: closed('Whether Redis and Postgres answer (within a second each). Why one is down stays in the service log.', {
      status: { type: 'string', enum: ['ready', 'not_ready'] },
      checks: closed('Each backing service.', {
        redis: { type: 'string', enum: ['up', 'down'] },
        postgres: { type: 'string', enum: ['up', 'down'] },
      }),
    }),
  };
}

/** An error response whose `error` is one of `codes` (an `Error` narrowed for this status). */
export function errorSchema(codes: readonly ApiErrorCode[]): JsonSchema {
  return { allOf: [ref('Error')], properties: { error: { type: 'string', enum: [...codes] } } };
}
