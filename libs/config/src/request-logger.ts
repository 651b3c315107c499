import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { Logger as Pino } from 'pino';
// nestjs-pino's request context: what its PinoLogger reads (`storage.getStore()?.logger`) for
// every line logged while a request is handled. Not re-exported by its index.
import { storage } from 'nestjs-pino/storage';
import { redactUrl } from './service-logger';

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const JOB_IN_URL = new RegExp(`^/jobs/(${UUID})(?:[/?]|$)`, 'i');
const PROBE = /^\/(health|ready|metrics)(?:[/?]|$)/;
const GIVEN_ID = /^[A-Za-z0-9._-]{1,128}$/;

/** The request's id: its `X-Request-Id` when that is a plain token of at most 128 characters, else a new UUID. */
export function requestIdOf(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && GIVEN_ID.test(given) ? given : randomUUID();
}

/**
 * What nestjs-pino's PinoLogger reads while a request is handled: a child logger with the
 * request's `reqId`, made only when something logs (most requests log nothing).
 */
class RequestLogContext {
  private child: Pino | undefined;
  readonly responseLogger = undefined;

  constructor(
    private readonly root: Pino,
    private readonly reqId: string,
  ) {}

  get logger(): Pino {
    return (this.child ??= this.root.child({ reqId: this.reqId }));
  }

  /** PinoLogger.assign replaces it with a child of its own. */
  set logger(logger: Pino) {
    this.child = logger;
  }
}

type Req = IncomingMessage & { id?: string; originalUrl?: string };

/**
 * The API's request logger, in place of pino-http (which made three child loggers per request,
 * before knowing whether any line would be written). Every request gets an id (`req.id`, from
 * `X-Request-Id` or a UUID) and a log context: lines logged while it is handled carry `reqId`.
 * One line per request when it is answered, at `debug` (`error` for a 5xx or a response error),
 * with `reqId`, `req` (id, method, URL with credentials redacted), `job_id`, `res` (status code),
 * `responseTime` (ms) and a message; never headers (the Authorization header holds a token).
 * Health, readiness and metrics probes are not logged. The line is built only when its level is
 * enabled.
 */
export function requestLogger(logger: Pino): (req: IncomingMessage, res: ServerResponse, next: () => void) => void {
  return (request, res, next) => {
    const req = request as Req;
    const reqId = (req.id ??= requestIdOf(req));
    const url = req.originalUrl ?? req.url ?? '';
    if (!PROBE.test(url)) {
      const started = Date.now();
      let done = false;
      const finished = (err?: Error) => {
        if (done) return;
        done = true;
        res.removeListener('close', onClose);
        res.removeListener('finish', onFinish);
        res.removeListener('error', finished);
        const failed = err !== undefined || res.statusCode >= 500;
        const level = failed ? 'error' : 'debug';
        if (!logger.isLevelEnabled(level)) return;
        const shown = redactUrl(url);
        const jobId = JOB_IN_URL.exec(url)?.[1];
        const fields: Record<string, unknown> = { reqId, req: { id: reqId, method: req.method, url: shown } };
        if (jobId) fields.job_id = jobId.toLowerCase();
        fields.res = { statusCode: res.statusCode };
        if (failed) {
          const error = err ?? new Error(`failed with status code ${res.statusCode}`);
          fields.err = error;
          fields.responseTime = Date.now() - started;
          logger.error(fields, `${req.method} ${shown} ${res.statusCode}: ${error.message}`);
        } else {
          const ms = Date.now() - started;
          fields.responseTime = ms;
          logger.debug(fields, `${req.method} ${shown} ${res.statusCode} in ${Math.round(ms)} ms`);
        }
      };
      const onClose = () => finished();
      const onFinish = () => finished();
      res.on('close', onClose);
      res.on('finish', onFinish);
      res.on('error', finished);
    }
    storage.run(new RequestLogContext(logger, reqId) as never, next);
  };
}
