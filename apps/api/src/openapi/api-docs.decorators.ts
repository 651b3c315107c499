import { applyDecorators } from '@nestjs/common';
import { ApiBody, ApiOperation, ApiParam, ApiQuery, ApiResponse, ApiSecurity } from '@nestjs/swagger';
import type { ApiErrorCode } from '../common/api-error-code';
import { JsonSchema, ref } from './json-schema';
import { errorSchema } from './openapi.schemas';

/**
 * Decorators that put the API's contract beside each handler: the schemas they name are the
 * components of `openapi.schemas.ts`. Nest's swagger types model OpenAPI 3.0 schemas; ours are
 * 3.1 (JSON Schema 2020-12, e.g. `type: ['string', 'null']`), so they are passed as plain data.
 */

/** A name for client generators and a one-line summary; `description` for the details. */
export const ApiOp = (operationId: string, summary: string, description?: string) =>
  ApiOperation({ operationId, summary, description });

/** An operation of a `@Public()` controller: no credentials at all. */
export const ApiPublicOp = (operationId: string, summary: string, description?: string) =>
  ApiOperation({ operationId, summary, description, security: [] });

const RETRY_AFTER = { description: 'Seconds to wait before retrying.', schema: { type: 'integer', minimum: 1 } };

/** What each error status means on this API, and the headers it carries. */
const ERROR_STATUS: Record<number, { description: string; headers?: Record<string, unknown> }> = {
  400: { description: 'Invalid request: the message names each bad field or parameter.' },
  401: {
    description:
      'No valid credentials: a missing, wrong or revoked bearer token, a token in the URL (`?access_token=` is always refused), or a ticket where none is accepted, expired or for another job.',
    headers: { 'WWW-Authenticate': { description: 'Always `Bearer`.', schema: { type: 'string', enum: ['Bearer'] } } },
  },
  403: { description: 'Only the admin token may do this.' },
  404: { description: 'Not found. An unknown id, a malformed id and another tenant’s job all answer the same.' },
  409: { description: 'Not in this state.' },
  410: { description: 'The janitor deleted the logs of this job (`cleaned`).' },
  413: { description: 'The request body exceeds `API_BODY_LIMIT_BYTES`.' },
  415: { description: 'A request body that is not `application/json`.' },
  429: { description: 'More than `API_RATE_LIMIT_PER_MINUTE` requests this minute for this token.', headers: { 'Retry-After': RETRY_AFTER } },
  503: { description: 'Redis or Postgres is unavailable; retry shortly.', headers: { 'Retry-After': RETRY_AFTER } },
};

/** Each status with the `error` codes it can carry on this operation. */
export type ErrorResponses = Partial<Record<keyof typeof ERROR_STATUS, readonly ApiErrorCode[]>>;

/** What every authenticated call can answer besides its own errors. */
export const AUTHENTICATED: ErrorResponses = {
  401: ['unauthorized'],
  429: ['rate_limited'],
  503: ['service_unavailable'],
};

/** What a call with a JSON request body can answer about the body itself (before any validation). */
export const WITH_BODY: ErrorResponses = {
  413: ['payload_too_large'],
  415: ['unsupported_media_type'],
};

export function ApiErrors(...groups: ErrorResponses[]) {
  const merged = new Map<number, Set<ApiErrorCode>>();
  for (const group of groups) {
    for (const [status, codes] of Object.entries(group)) {
      const set = merged.get(Number(status)) ?? new Set<ApiErrorCode>();
      for (const c of codes ?? []) set.add(c);
      merged.set(Number(status), set);
    }
  }
  return applyDecorators(
    ...[...merged].map(([status, codes]) => {
      const { description, headers } = ERROR_STATUS[status];
      const list = [...codes];
      return ApiResponse({
        status,
        description: `${description} (\`${list.join('`, `')}\`)`,
        headers: headers as never,
        content: { 'application/json': { schema: errorSchema(list) } },
      });
    }),
  );
}

/** A JSON response whose body is the named component schema. */
export const ApiJson = (status: number, schema: string, description: string, headers?: Record<string, unknown>) =>
  ApiResponse({ status, description, headers: headers as never, content: { 'application/json': { schema: ref(schema) } } });

/** A response without a body. */
export const ApiEmpty = (status: number, description: string) => ApiResponse({ status, description });

/** A response in another media type (the log stream, the download, the metrics). */
export const ApiMedia = (status: number, mediaType: string, schema: JsonSchema, description: string, headers?: Record<string, unknown>) =>
  ApiResponse({ status, description, headers: headers as never, content: { [mediaType]: { schema: schema as never } } });

/** A required JSON request body: the named component schema. */
export const ApiJsonBody = (schema: string, description: string) =>
  ApiBody({ required: true, description, schema: ref(schema) as never });

/** The `id` path parameter of a job or a token. */
export const ApiId = (what: string) =>
  ApiParam({ name: 'id', description: `The ${what}'s id (a UUID; anything else is not found).`, schema: { type: 'string', format: 'uuid' } });

/** A query parameter, optional unless said. */
export interface QueryParam {
  name: string;
  description: string;
  schema: JsonSchema;
  required?: boolean;
}

export const ApiQueryParams = (params: readonly QueryParam[]) =>
  applyDecorators(
    ...params.map((p) => ApiQuery({ name: p.name, description: p.description, required: p.required ?? false, schema: p.schema as never })),
  );

/** The log stream and download also open with `?ticket=` instead of a bearer token (the controller's). */
export const ApiTicketOrBearer = () =>
  applyDecorators(
    ApiSecurity('logTicket'),
    ApiQueryParams([
      {
        name: 'ticket',
        description:
          'A ticket from `POST /jobs/{id}/logs/ticket`, instead of the `Authorization` header (for EventSource and links, which cannot send one).',
        schema: { type: 'string', pattern: '^fpt_[A-Za-z0-9_-]{43}$' },
      },
    ]),
  );
