import { FlashpodsConfig } from '@flashpods/config';
import { LOG_KEEP_VALUES } from '@flashpods/contracts';
import { z } from 'zod';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9_.\/-]*$/;
const stringMap = (keyPattern: RegExp, keyWhat: string, valueMax: number, maxEntries: number) =>
  z
    .record(z.string().max(128).regex(keyPattern, `keys must be ${keyWhat}`), z.string().max(valueMax))
    .refine((m) => Object.keys(m).length <= maxEntries, `at most ${maxEntries} entries`);

/** The body of `POST /jobs`, field by field, with the configured maximums. Unknown fields are refused. */
export function createJobSchema(config: FlashpodsConfig) {
  const j = config.jobs;
  return z
    .object({
      image: z
        .string()
        .min(1)
        .max(512)
        .regex(/^[A-Za-z0-9][A-Za-z0-9_.\/:@-]*$/, 'must be an image reference such as busybox:latest'),
      command: z.array(z.string().max(64 * 1024)).min(1).max(1024).optional(),
      env: stringMap(ENV_NAME, 'environment variable names', 32 * 1024, j.maxEnvEntries).optional(),
      secrets: stringMap(ENV_NAME, 'environment variable names', 32 * 1024, j.maxEnvEntries)
        .refine((m) => Object.values(m).every((v) => v.length >= 4), 'secret values must be at least 4 characters')
        .optional(),
      labels: stringMap(LABEL_KEY, 'letters, digits, _ . / -', 256, j.maxLabels).optional(),
      timeout_seconds: z.number().int().min(1).max(j.timeoutMaxSeconds).optional(),
      limits: z
        .object({
          memory_mb: z.number().int().min(6).max(j.memoryMbMax).optional(),
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
