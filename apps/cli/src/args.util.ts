import { CliError } from './cli-error';

/**
 * `K=V` → `['K', 'V']`; the value is everything after the first `=` and may be empty or hold
 * more `=`. A bare `K` takes its value from `env` (as `docker run -e K` does), so a secret need
 * not appear on the command line or in the shell's history.
 */
export function parseKeyValue(raw: string, flag: string, env?: NodeJS.ProcessEnv): [string, string] {
  const at = raw.indexOf('=');
  if (at === 0) throw CliError.usage(`${flag} ${raw}: the name before '=' is empty`);
  if (at > 0) return [raw.slice(0, at), raw.slice(at + 1)];
  if (env === undefined) throw CliError.usage(`${flag} ${raw}: expected key=value`);
  const value = env[raw];
  if (value === undefined) throw CliError.usage(`${flag} ${raw}: expected K=V, or K set in this environment`);
  return [raw, value];
}

/** Repeated `--flag K=V` options as one object; a later key wins. */
export function keyValues(raws: readonly string[], flag: string, env?: NodeJS.ProcessEnv): Record<string, string> | undefined {
  if (raws.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const raw of raws) {
    const [k, v] = parseKeyValue(raw, flag, env);
    out[k] = v;
  }
  return out;
}

/** Commander's collector for a repeatable option. */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function parsePositiveInt(raw: string, flag: string): number {
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || !Number.isSafeInteger(Number(raw))) {
    throw CliError.usage(`${flag} ${raw}: expected a positive integer`);
  }
  return Number(raw);
}

export function parsePositiveNumber(raw: string, flag: string): number {
  const n = Number(raw);
  if (!/^\d*\.?\d+$/.test(raw) || !(n > 0)) throw CliError.usage(`${flag} ${raw}: expected a positive number`);
  return n;
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * `--since`: an ISO 8601 time, epoch milliseconds, or a duration back from `now` (`90s`, `10m`,
 * `2h`, `1d`, `1h30m`, as `docker logs --since`). Returns epoch milliseconds.
 */
export function parseSince(raw: string, now: number): number {
  if (/^\d+$/.test(raw)) return Number(raw);
  const duration = /^(\d+(?:ms|s|m|h|d))+$/.test(raw)
    ? [...raw.matchAll(/(\d+)(ms|s|m|h|d)/g)].reduce((sum, [, n, unit]) => sum + Number(n) * UNIT_MS[unit], 0)
    : undefined;
  if (duration !== undefined) return now - duration;
  // Date.parse accepts "1" or "March"; insist on something that starts like a date.
  const ms = /^\d{4}-\d{2}-\d{2}/.test(raw) ? Date.parse(raw) : NaN;
  if (!Number.isFinite(ms)) throw CliError.usage(`--since ${raw}: expected an ISO time, epoch ms, or a duration such as 10m`);
  return ms;
}

export const LOG_STREAMS = ['stdout', 'stderr', 'system'] as const;
export type LogStreamName = (typeof LOG_STREAMS)[number];

export function parseStream(raw: string): LogStreamName {
  if (!(LOG_STREAMS as readonly string[]).includes(raw)) throw CliError.usage(`--stream ${raw}: expected stdout, stderr or system`);
  return raw as LogStreamName;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * A job id as it goes into a path. Ids are UUIDs; checking here also keeps `..` or `/` in an
 * argument from turning `/jobs/ID` into another endpoint.
 */
export function jobId(raw: string): string {
  if (!UUID.test(raw)) throw CliError.usage(`${raw}: not a job id (job ids are UUIDs, as flashpods ls shows them)`);
  return raw.toLowerCase();
}
