import { FlashpodsConfig } from '@flashpods/config';
import { LOG_KEEP_VALUES } from '@flashpods/contracts';
import { z } from 'zod';
import type { JsonSchema } from '../openapi/json-schema';

/**
 * The bounds of `POST /jobs`, shared by the zod schema that validates a body and the JSON Schema
 * the OpenAPI document publishes (`createJobRequestSchema`); `create-job.schema.spec.ts` checks
 * that both accept and refuse the same bodies.
 */
const IMAGE = /^[A-Za-z0-9][A-Za-z0-9_.\/:@-]*$/;
const IMAGE_MAX = 512;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9_.\/-]*$/;
const KEY_MAX = 128;
const ENV_VALUE_MAX = 32 * 1024;
const LABEL_VALUE_MAX = 256;
const SECRET_MIN = 4;
const ARG_MAX = 64 * 1024;
const ARGS_MAX = 1024;
const MEMORY_MB_MIN = 6;

const stringMap = (keyPattern: RegExp, keyWhat: string, valueMax: number, maxEntries: number) =>
  z
    .record(z.string().max(KEY_MAX).regex(keyPattern, `keys must be ${keyWhat}`), z.string().max(valueMax))
    .refine((m) => Object.keys(m).length <= maxEntries, `at most ${maxEntries} entries`);

/** The body of `POST /jobs`, field by field, with the configured maximums. Unknown fields are refused. */
export function createJobSchema(config: FlashpodsConfig) {
  const j = config.jobs;
  return z
    .object({
      image: z
        .string()
        .min(1)
        .max(IMAGE_MAX)
        .regex(IMAGE, 'must be an image reference such as busybox:latest'),
      command: z.array(z.string().max(ARG_MAX)).min(1).max(ARGS_MAX).optional(),
      env: stringMap(ENV_NAME, 'environment variable names', ENV_VALUE_MAX, j.maxEnvEntries).optional(),
      secrets: stringMap(ENV_NAME, 'environment variable names', ENV_VALUE_MAX, j.maxEnvEntries)
        .refine((m) => Object.values(m).every((v) => v.length >= SECRET_MIN), `secret values must be at least ${SECRET_MIN} characters`)
        .optional(),
      labels: stringMap(LABEL_KEY, 'letters, digits, _ . / -', LABEL_VALUE_MAX, j.maxLabels).optional(),
      timeout_seconds: z.number().int().min(1).max(j.timeoutMaxSeconds).optional(),
      limits: z
        .object({
          memory_mb: z.number().int().min(MEMORY_MB_MIN).max(j.memoryMbMax).optional(),
          cpus: z.number().positive().max(j.cpusMax).optional(),
          pids: z.number().int().min(1).max(j.pidsMax).optional(),
        })
        .strict()
        .optional(),
      network: z.boolean().optional(),
      log_keep: z.enum(LOG_KEEP_VALUES).optional(),
    })
    .strict()
    .superRefine((body, ctx) => {
      for (const name of Object.keys(body.secrets ?? {})) {
        if (body.env && name in body.env) {
          ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['secrets', name], message: 'also set in env' });
        }
      }
      if (body.network && !j.networkAllowed) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['network'], message: 'network access is not allowed here' });
      }
    });
}

export type CreateJobBody = z.infer<ReturnType<typeof createJobSchema>>;

const jsonStringMap = (keyPattern: RegExp, valueSchema: JsonSchema, maxEntries: number, description: string): JsonSchema => ({
  type: 'object',
  description,
  propertyNames: { type: 'string', maxLength: KEY_MAX, pattern: keyPattern.source },
  additionalProperties: { type: 'string', ...valueSchema },
  maxProperties: maxEntries,
});

/**
 * `createJobSchema` as the OpenAPI document publishes it (JSON Schema 2020-12, OpenAPI 3.1), with
 * this deployment's maximums. Two rules need the whole body and are stated in descriptions: a
 * secret may not share its name with an env entry, and `network: true` is refused unless the
 * deployment allows it. No `default` keywords: generators such as openapi-typescript make a
 * property with a default required, right for a response and wrong for a request; the defaults
 * are in the descriptions.
 */
export function createJobRequestSchema(config: FlashpodsConfig): JsonSchema {
  const j = config.jobs;
  return {
    type: 'object',
    description: 'A job to run. Unknown fields are refused with `400 invalid_request`, which names every bad field.',
    required: ['image'],
    additionalProperties: false,
    properties: {
      image: { type: 'string', minLength: 1, maxLength: IMAGE_MAX, pattern: IMAGE.source, description: 'An image reference, e.g. `busybox:latest`; pulled if missing.', examples: ['busybox:latest'] },
      command: {
        type: 'array',
        description: "The command and its arguments (exec form, no shell); the image's default command when absent.",
        items: { type: 'string', maxLength: ARG_MAX },
        minItems: 1,
        maxItems: ARGS_MAX,
        examples: [['sh', '-c', 'echo hello']],
      },
      env: jsonStringMap(ENV_NAME, { maxLength: ENV_VALUE_MAX }, j.maxEnvEntries, 'Environment variables of the container.'),
      secrets: jsonStringMap(
        ENV_NAME,
        { minLength: SECRET_MIN, maxLength: ENV_VALUE_MAX },
        j.maxEnvEntries,
        'Environment variables whose values are replaced by `[MASKED]` in every stored and streamed line; never stored, never shown again (the job lists their names). A name may not also be in `env`.',
      ),
      labels: jsonStringMap(LABEL_KEY, { maxLength: LABEL_VALUE_MAX }, j.maxLabels, 'Labels to filter jobs by (`GET /jobs?label=key=value`).'),
      timeout_seconds: {
        type: 'integer',
        minimum: 1,
        maximum: j.timeoutMaxSeconds,
        description: `The job is killed and ends \`timed_out\` past this. Default ${j.timeoutDefaultSeconds}.`,
      },
      limits: {
        type: 'object',
        additionalProperties: false,
        description: 'Container limits; each defaults to the deployment default.',
        properties: {
          memory_mb: { type: 'integer', minimum: MEMORY_MB_MIN, maximum: j.memoryMbMax, description: `Default ${j.memoryMbDefault}.` },
          cpus: { type: 'number', exclusiveMinimum: 0, maximum: j.cpusMax, description: `Default ${j.cpusDefault}.` },
          pids: { type: 'integer', minimum: 1, maximum: j.pidsMax, description: `Default ${j.pidsDefault}.` },
        },
      },
      network: {
        type: 'boolean',
        description: j.networkAllowed
          ? 'Whether the container gets a network (default `false`: `--network none`).'
          : 'Whether the container gets a network; this deployment refuses `true` (`JOB_NETWORK_ALLOWED=false`).',
      },
      log_keep: {
        type: 'string',
        enum: [...LOG_KEEP_VALUES],
        description:
          'What a log over `LOG_MAX_BYTES` keeps: `head` (default) the beginning, then the marker; `head_tail` the first half of the cap, the marker, then the last lines that fit the other half (so `output?tail=` returns the real end).',
      },
    },
  };
}

/** `image: Required; limits.pids: Number must be ...` — every problem, each naming its field. */
export function describeZodError(err: z.ZodError): string {
  return err.issues
    .map((i) => {
      const path = i.path.join('.');
      if (i.code === z.ZodIssueCode.unrecognized_keys) {
        return `${path ? `${path}: ` : ''}unknown field(s) ${i.keys.join(', ')}`;
      }
      return `${path || 'body'}: ${i.message}`;
    })
    .join('; ');
}
