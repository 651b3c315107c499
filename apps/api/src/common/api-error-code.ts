/**
 * Every `error` code the API sends, in one list: `ApiError` and the hand-written error bodies take
 * only these (a new code is a compile error until it is added here), and the OpenAPI `Error`
 * schema's enum is this list, so the document names exactly the codes a client can meet.
 */
export const API_ERROR_CODES = [
  'invalid_request',
  'unauthorized',
  'forbidden',
  'not_found',
  'job_not_found',
  'token_not_found',
  'logs_not_available',
  'logs_deleted',
  'job_terminal',
  'job_not_terminal',
  'method_not_allowed',
  'payload_too_large',
  'unsupported_media_type',
  'rate_limited',
  'service_unavailable',
  'internal_error',
] as const;

export type ApiErrorCode = (typeof API_ERROR_CODES)[number];

/** The body of every error response. */
export interface ApiErrorBody {
  error: ApiErrorCode;
  message: string;
}

export const errorBody = (error: ApiErrorCode, message: string): ApiErrorBody => ({ error, message });
