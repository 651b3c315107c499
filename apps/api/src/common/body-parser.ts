import express, { ErrorRequestHandler, RequestHandler } from 'express';
import { errorBody } from './api-error-code';

/** JSON bodies up to `limit` bytes; anything larger is refused with 413 before it is read whole. */
export function jsonBody(limit: number): RequestHandler {
  return express.json({ limit, strict: false });
}

/** Body parser failures as the API's own errors, never as express's HTML page. */
export const bodyErrors: ErrorRequestHandler = (err, _req, res, next) => {
  const type = (err as { type?: string }).type;
  if (type === 'entity.too.large') {
    res.status(413).json(errorBody('payload_too_large', `request body exceeds ${(err as { limit: number }).limit} bytes`));
  } else if (type === 'entity.parse.failed') {
    res.status(400).json(errorBody('invalid_request', 'request body is not valid JSON'));
  } else if (type === 'encoding.unsupported' || type === 'charset.unsupported') {
    res.status(415).json(errorBody('unsupported_media_type', (err as Error).message));
  } else if (type) {
    res.status(400).json(errorBody('invalid_request', (err as Error).message));
  } else {
    next(err);
  }
};

/**
 * A request that carries a body must say it is JSON: anything else is `415`, not a confusing `400`
 * about a body the parser never read. Bull Board's own API is left to it.
 */
export const jsonOnly: RequestHandler = (req, res, next) => {
  const length = req.headers['content-length'];
  const hasBody = req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
  if (!hasBody || req.is(['application/json', 'application/*+json']) || req.path.startsWith('/admin/queues/')) {
    next();
    return;
  }
  res.status(415).json(errorBody('unsupported_media_type', 'send the request body as application/json'));
};
