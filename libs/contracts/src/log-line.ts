/** Where a log line came from. Numeric values are the wire and index encoding: never renumber. */
export enum LogStream {
  Stdout = 1,
  Stderr = 2,
  System = 3,
}

export const LOG_STREAM_NAMES: Readonly<Record<LogStream, string>> = {
  [LogStream.Stdout]: 'stdout',
  [LogStream.Stderr]: 'stderr',
  [LogStream.System]: 'system',
};

export function parseLogStream(name: string): LogStream | undefined {
  const found = Object.entries(LOG_STREAM_NAMES).find(([, n]) => n === name);
  return found ? (Number(found[0]) as LogStream) : undefined;
}

/** Severity of a line. Numeric values are the index encoding: never renumber. */
export enum LogLevel {
  Debug = 1,
  Info = 2,
  Warn = 3,
  Error = 4,
  Fatal = 5,
}

export const LOG_LEVEL_NAMES: Readonly<Record<LogLevel, string>> = {
  [LogLevel.Debug]: 'debug',
  [LogLevel.Info]: 'info',
  [LogLevel.Warn]: 'warn',
  [LogLevel.Error]: 'error',
  [LogLevel.Fatal]: 'fatal',
};

export function parseLogLevel(name: string): LogLevel | undefined {
  const found = Object.entries(LOG_LEVEL_NAMES).find(([, n]) => n === name);
  return found ? (Number(found[0]) as LogLevel) : undefined;
}

/** One captured line as it travels from runner to persister. `text` has no trailing newline. */
export interface LogLine {
  seq: number;
  /** Milliseconds since the epoch, UTC. */
  ts: number;
  stream: LogStream;
  text: Buffer;
}

/**
 * What a job's stored log keeps once it passes LOG_MAX_BYTES. `head` (the default, seed 000):
 * the beginning, then the truncation marker. `head_tail`: the first half of the cap, the marker,
 * then the job's last lines in the rest, so the end (where the error usually is) survives.
 */
export enum LogKeep {
  Head = 'head',
  HeadTail = 'head_tail',
}

export const LOG_KEEP_VALUES = [LogKeep.Head, LogKeep.HeadTail] as const;

/**
 * How a runner captures a container's output (`RUNNER_LOG_MODE`). `durable` (the default): the
 * Docker daemon keeps its own copy (the `local` log driver), so a restarted runner replays what it
 * missed and no line is lost. `fast`: no daemon copy (the `none` driver), about twice as fast, but
 * what a container writes while no runner is attached (a runner crash or restart) is gone; the
 * job's log then says so with a system line at the gap, and its `log.lines_lost` is set.
 */
export enum LogMode {
  Durable = 'durable',
  Fast = 'fast',
}

export const LOG_MODE_VALUES = [LogMode.Durable, LogMode.Fast] as const;
