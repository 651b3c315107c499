import { LogLevel, LogStream } from '@flashpods/contracts';

const JSON_LEVEL_MAX_BYTES = 64 * 1024;

// Bound once at load: the enums come through a package index, read with a getter on each use
// (how TypeScript compiles re-exports), and detectLevel runs for every stored line.
const STDERR = LogStream.Stderr;
const SYSTEM = LogStream.System;
const ERROR = LogLevel.Error;
const INFO = LogLevel.Info;

const ALIASES: Record<string, LogLevel> = {
  trace: LogLevel.Debug,
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  notice: LogLevel.Info,
  warn: LogLevel.Warn,
  warning: LogLevel.Warn,
  error: LogLevel.Error,
  err: LogLevel.Error,
  fatal: LogLevel.Fatal,
  critical: LogLevel.Fatal,
  crit: LogLevel.Fatal,
  panic: LogLevel.Fatal,
};

/** pino/bunyan numeric levels. */
function numericLevel(n: number): LogLevel | undefined {
  if (n >= 60) return LogLevel.Fatal;
  if (n >= 50) return LogLevel.Error;
  if (n >= 40) return LogLevel.Warn;
  if (n >= 30) return LogLevel.Info;
  if (n >= 10) return LogLevel.Debug;
  return undefined;
}

/**
 * stdout → info, stderr → error, system → info, unless the line is JSON with a `level` field.
 * The line is `text[start, end)`, so a caller walking a larger buffer need not slice it.
 */
export function detectLevel(stream: LogStream, text: Buffer, start = 0, end = text.length): LogLevel {
  const fallback = stream === STDERR ? ERROR : INFO;
  const length = end - start;
  if (stream === SYSTEM || length < 2 || length > JSON_LEVEL_MAX_BYTES) return fallback;
  let first = start;
  while (first < end && (text[first] === 0x20 || text[first] === 0x09)) first++;
  if (text[first] !== 0x7b /* { */) return fallback;
  try {
    const parsed: unknown = JSON.parse(text.toString('utf8', start, end));
    if (parsed === null || typeof parsed !== 'object') return fallback;
    const level = (parsed as Record<string, unknown>).level;
    if (typeof level === 'string') return ALIASES[level.toLowerCase()] ?? fallback;
    if (typeof level === 'number') return numericLevel(level) ?? fallback;
  } catch {
    // not JSON after all: plain text
  }
  return fallback;
}
