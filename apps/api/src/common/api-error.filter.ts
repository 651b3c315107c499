import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger, NotFoundException } from '@nestjs/common';
import type { Request, Response } from 'express';
import { allowedMethods } from './allowed-methods';
import { ApiError } from './api-error';
import { ApiErrorCode, errorBody } from './api-error-code';

/** Codes for Nest's own HTTP exceptions (an unknown route is its `NotFoundException`). */
const CODE_BY_STATUS: Partial<Record<number, ApiErrorCode>> = {
  400: 'invalid_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  429: 'rate_limited',
};

/** Every error leaves as `{"error": "<code>", "message": "<text>"}`; an unexpected one as a bare 500. */
@Catch()
export class ApiErrorFilter implements ExceptionFilter {
  private readonly log = new Logger('ApiError');

  catch(err: unknown, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<Response>();
    if (res.headersSent) {
      res.end();
      return;
    }
    if (err instanceof ApiError) {
      for (const [k, v] of Object.entries(err.headers)) res.setHeader(k, v);
      res.status(err.getStatus()).json(err.getResponse());
      return;
    }
    if (err instanceof NotFoundException) {
      // No route matched: a known path with another method is 405, not 404.
      const allow = allowedMethods(host.switchToHttp().getRequest<Request>());
      if (allow.length) {
        res.setHeader('Allow', allow.join(', '));
        res.status(405).json(errorBody('method_not_allowed', `this path answers ${allow.join(', ')}`));
        return;
      }
    }
    if (err instanceof HttpException) {
      const status = err.getStatus();
      const body = err.getResponse();
      const message = typeof body === 'string' ? body : ((body as { message?: unknown }).message ?? err.message);
      res.status(status).json(errorBody(CODE_BY_STATUS[status] ?? (status >= 500 ? 'internal_error' : 'invalid_request'), String(message)));
      return;
    }
    if (isDependencyDown(err)) {
      this.log.warn(`dependency unavailable: ${(err as Error).message}`);
      res.setHeader('Retry-After', '2');
      res.status(503).json(errorBody('service_unavailable', 'a backing service is unavailable; retry shortly'));
      return;
    }
    this.log.error(`unhandled: ${(err as Error)?.stack ?? String(err)}`);
    res.status(500).json(errorBody('internal_error', 'internal error'));
  }
}

/** Postgres or Redis down or restarting: connection refused or reset, admin shutdown, cannot connect now. */
function isDependencyDown(err: unknown): boolean {
  const e = err as { code?: string; message?: string; driverError?: { code?: string } };
  const code = e?.driverError?.code ?? e?.code;
  if (code && ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', '57P01', '57P02', '57P03', '08000', '08001', '08003', '08006'].includes(code)) {
    return true;
  }
  // ioredis without an offline queue, or past its command timeout; pg's pool past its connect timeout.
  return /Connection terminated|connection timeout|Connection is closed|enableOfflineQueue|Command timed out|max retries per request|timeout exceeded when trying to connect/i.test(
    e?.message ?? '',
  );
}
