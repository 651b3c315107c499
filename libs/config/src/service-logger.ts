import { hostname } from 'node:os';
import pino, { DestinationStream, Logger as Pino } from 'pino';
import pretty from 'pino-pretty';
import type { Params } from 'nestjs-pino';
import { FlashpodsConfig } from './flashpods.config';

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
/** `job <uuid>` in a message: how every service has always named the job a line is about. */
const JOB_IN_MESSAGE = new RegExp(`\\bjob (${UUID})\\b`, 'i');
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
 * nestjs-pino's parameters: Nest's loggers write through the process logger. nestjs-pino mounts
 * no middleware (`forRoutes: []`): the API logs its requests with `requestLogger`
 * (request-logger.ts), which also gives each request the log context nestjs-pino would have.
 */
export function loggerModuleParams(): Params {
  return { pinoHttp: { logger: serviceLogger() }, useExisting: true, forRoutes: [] };
}
