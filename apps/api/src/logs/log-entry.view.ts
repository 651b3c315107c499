import { LOG_LEVEL_NAMES, LOG_STREAM_NAMES, LogLevel, LogStream } from '@flashpods/contracts';
import { TIME_PREFIX_BYTES } from '@flashpods/log-format';

/** One line as the structured endpoints show it. */
export interface LogEntryView {
  seq: number;
  ts: string;
  stream: string;
  level: string;
  line: string;
}

/** The last time formatted: the lines of a page mostly share their millisecond with the one before. */
let lastTs = Number.NaN;
let lastIso = '';
/** A line's `ts` as the structured endpoints show it (ISO 8601, UTC, milliseconds). */
export function isoTime(ts: number): string {
  if (ts !== lastTs) {
    lastIso = new Date(ts).toISOString();
    lastTs = ts;
  }
  return lastIso;
}

export function logEntryView(seq: number, ts: number, stream: LogStream, level: LogLevel, text: string): LogEntryView {
  return {
    seq,
    ts: isoTime(ts),
    stream: LOG_STREAM_NAMES[stream] ?? 'unknown',
    level: LOG_LEVEL_NAMES[level] ?? 'info',
    line: text,
  };
}

/** The text of a stored line: without its `[HH:MM:SS.mmm] ` prefix and its newline. */
export function storedLineText(stored: Buffer): string {
  return stored.subarray(TIME_PREFIX_BYTES, stored.length - 1).toString('utf8');
}
