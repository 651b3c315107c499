import { HttpException, HttpStatus } from '@nestjs/common';
import { ApiErrorCode, errorBody } from './api-error-code';

/** An error the client can act on: `{"error": code, "message": text}` with this status. */
export class ApiError extends HttpException {
  constructor(status: HttpStatus, readonly code: ApiErrorCode, message: string, readonly headers: Record<string, string> = {}) {
    super(errorBody(code, message), status);
  }

  static invalid(message: string): ApiError {
    return new ApiError(HttpStatus.BAD_REQUEST, 'invalid_request', message);
  }

  /** A 401 says how to authenticate (RFC 6750). */
  static unauthorized(message: string): ApiError {
    return new ApiError(HttpStatus.UNAUTHORIZED, 'unauthorized', message, { 'WWW-Authenticate': 'Bearer' });
  }

  static jobNotFound(): ApiError {
    return new ApiError(HttpStatus.NOT_FOUND, 'job_not_found', 'job not found');
  }
}
