import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import pino, { DestinationStream, Logger as Pino } from 'pino';
import pretty from 'pino-pretty';
import type { Options as PinoHttpOptions } from 'pino-http';
import type { Params } from 'nestjs-pino';
import { FlashpodsConfig } from './flashpods.config';

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
/** `job <uuid>` in a message: how every service has always named the job a line is about. */
const JOB_IN_MESSAGE = new RegExp(`\\bjob (${UUID})\\b`, 'i');
const JOB_IN_URL = new RegExp(`^/jobs/(${UUID})(?:[/?]|$)`, 'i');
/** Query parameters that carry a credential (a log ticket); `access_token` is refused, but may be sent. */
const SECRET_QUERY = /([?&](?:ticket|access_token|token)=)[^&]*/gi;
/** Nest's own start-up chatter (one line per module and per route): kept for LOG_LEVEL=debug. */
const FRAMEWORK_CONTEXTS = new Set(['InstanceLoader', 'RoutesResolver', 'RouterExplorer', 'NestFactory', 'NestApplication']);
const INFO = 30;

/** The job id a message names (`job <uuid>`), for the `job_id` field. */
export function jobIdOfMessage(msg: string): string | undefined {
  return JOB_IN_MESSAGE.exec(msg)?.[1].toLowerCase();
}

/** A request URL as logged: credentials in the query string replaced. */
export function redactUrl(url: string): string {
  return url.replace(SECRET_QUERY, '$1[REDACTED]');
}

let processLogger: Pino | undefined;

/**
 * The process's pino logger: JSON lines on stdout (`LOG_FORMAT=json`) or pino-pretty
 * (`LOG_FORMAT=text`), at `LOG_LEVEL`. Every line carries `service` (and the runner's
 * `runner_id`); a line about one job carries `job_id`, taken from the message when the caller
 * did not pass one, so the existing `job <id> …` messages are searchable by field. Written
 * synchronously, so nothing is lost when a service exits and lines keep their order with stdout.
 */
export function createServiceLogger(config: FlashpodsConfig, service: string, to?: DestinationStream): Pino {
  const base: Record<string, string> = { service };
  if (service === 'runner') base.runner_id = config.runner.id;
  const destination =
    to ??
    (config.logFormat === 'json'
      ? pino.destination({ dest: 1, sync: true })
      : pretty({
          sync: true,
          translateTime: 'SYS:HH:MM:ss.l',
          ignore: 'pid,hostname,service,context,runner_id,job_id,reqId',
          // No service name: `npm start` and compose prefix each line with it already.
          messageFormat: '{if context}{context}: {end}{msg}',
          singleLine: true,
        }));
  processLogger = pino(
    {
      level: config.logLevel,
      base: { pid: process.pid, hostname: hostname(), ...base },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      hooks: {
        logMethod(args, method, level) {
          const first = args[0] as unknown;
          const fields = typeof first === 'object' && first !== null && !(first instanceof Error) ? (first as Record<string, unknown>) : undefined;
          const msg = fields ? args[1] : first;
          let next = args as unknown[];
          if (typeof msg === 'string' && fields?.job_id === undefined) {
            const jobId = jobIdOfMessage(msg);
            if (jobId) next = fields ? [{ ...fields, job_id: jobId }, ...args.slice(1)] : [{ job_id: jobId }, ...args];
          }
          if (level === INFO && typeof fields?.context === 'string' && FRAMEWORK_CONTEXTS.has(fields.context)) {
            return (this.debug as (...a: unknown[]) => void)(...next);
          }
          return (method as (...a: unknown[]) => void).apply(this, next);
        },
      },
    },
    destination,
  );
  return processLogger;
}

/** The logger made by {@link createServiceLogger} (a default one if none was, e.g. in a test). */
export function serviceLogger(): Pino {
  return (processLogger ??= pino({ base: { pid: process.pid, service: 'flashpods' } }));
}

/**
 * nestjs-pino's parameters: Nest's loggers write through the process logger; HTTP requests (the
 * API) are logged once each when they end, at `debug` (`error` for a 5xx), with method, path
 * (credentials redacted), status, duration and `job_id`; never headers (the Authorization header
 * holds a token). Health, readiness and metrics probes are not logged.
 */
export function loggerModuleParams(): Params {
  const http: PinoHttpOptions = {
    logger: serviceLogger(),
    quietReqLogger: true,
    genReqId: (req: IncomingMessage) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && /^[A-Za-z0-9._-]{1,128}$/.test(given) ? given : randomUUID();
    },
    autoLogging: { ignore: (req: IncomingMessage) => /^\/(health|ready|metrics)(?:[/?]|$)/.test(req.url ?? '') },
    // `silent` when the line would not be printed anyway: pino-http then skips building it (its
    // bindings, serialisers and message), which under load cost more than the request's query.
    customLogLevel: (_req: IncomingMessage, res: ServerResponse, err?: Error) => {
      const level = err || res.statusCode >= 500 ? 'error' : 'debug';
      return serviceLogger().isLevelEnabled(level) ? level : 'silent';
    },
    customProps: (req: IncomingMessage) => {
      const jobId = JOB_IN_URL.exec(req.url ?? '')?.[1];
      return jobId ? { job_id: jobId.toLowerCase() } : {};
    },
    customSuccessMessage: (req: IncomingMessage, res: ServerResponse, ms: number) =>
      `${req.method} ${redactUrl(req.url ?? '')} ${res.statusCode} in ${Math.round(ms)} ms`,
    customErrorMessage: (req: IncomingMessage, res: ServerResponse, err: Error) =>
      `${req.method} ${redactUrl(req.url ?? '')} ${res.statusCode}: ${err.message}`,
    serializers: {
      req: (req: { id: unknown; method: string; url: string }) => ({ id: req.id, method: req.method, url: redactUrl(req.url) }),
      res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
    },
  };
  return { pinoHttp: http };
}
