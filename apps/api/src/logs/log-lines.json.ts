import { LOG_LEVEL_NAMES, LOG_STREAM_NAMES, LogLevel, LogStream } from '@flashpods/contracts';
import { isoTime } from './log-entry.view';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** `","stream":"stdout","level":"info","line":` for each stream and level, as `logEntryView` names them. */
const MIDDLES = new Map<number, Buffer>();
function middle(stream: LogStream, level: LogLevel): Buffer {
  const key = stream * 256 + level;
  let m = MIDDLES.get(key);
  if (!m) {
    const names = `,"stream":${JSON.stringify(LOG_STREAM_NAMES[stream] ?? 'unknown')},"level":${JSON.stringify(LOG_LEVEL_NAMES[level] ?? 'info')},"line":`;
    MIDDLES.set(key, (m = Buffer.from(names)));
  }
  return m;
}

/**
 * The JSON of an array of `LogEntryView`s (the `logs` of a page), written straight from the
 * stored bytes of the lines: byte for byte what `JSON.stringify` makes of the entries, without
 * making them. A line of printable ASCII other than `"` and `\` (most lines) is copied as it is;
 * any other is decoded and escaped by `JSON.stringify`, as its entry would be.
 */
export class LogLinesJson {
  private buf: Buffer;
  private len = 1;
  private lastTs = Number.NaN;
  private lastTsJson = Buffer.alloc(0);
  count = 0;

  constructor(expectedBytes = 4096) {
    this.buf = Buffer.allocUnsafe(Math.max(64, expectedBytes));
    this.buf[0] = 0x5b; // [
  }

  /**
   * Appends one entry: `bytes[start, end)` is the line's text (without its time prefix and its
   * newline).
   */
  add(seq: number, ts: number, stream: LogStream, level: LogLevel, bytes: Buffer, start: number, end: number): void {
    if (ts !== this.lastTs) {
      this.lastTs = ts;
      this.lastTsJson = Buffer.from(`,"ts":"${isoTime(ts)}"`, 'latin1');
    }
    const head = `${this.count === 0 ? '' : ','}{"seq":${JSON.stringify(seq)}`;
    const mid = middle(stream, level);
    let plain = true;
    for (let i = start; i < end; i++) {
      const b = bytes[i];
      if (b < 0x20 || b > 0x7e || b === QUOTE || b === BACKSLASH) {
        plain = false;
        break;
      }
    }
    const text = plain ? undefined : JSON.stringify(bytes.toString('utf8', start, end));
    const textBytes = plain ? end - start + 2 : Buffer.byteLength(text!);
    this.reserve(head.length + this.lastTsJson.length + mid.length + textBytes + 1);
    this.len += this.buf.write(head, this.len, 'latin1');
    this.len += this.lastTsJson.copy(this.buf, this.len);
    this.len += mid.copy(this.buf, this.len);
    if (plain) {
      this.buf[this.len++] = QUOTE;
      this.len += bytes.copy(this.buf, this.len, start, end);
      this.buf[this.len++] = QUOTE;
    } else {
      this.len += this.buf.write(text!, this.len, 'utf8');
    }
    this.buf[this.len++] = 0x7d; // }
    this.count++;
  }

  /** The array, closed. Call once. */
  end(): Buffer {
    this.reserve(1);
    this.buf[this.len++] = 0x5d; // ]
    return this.buf.subarray(0, this.len);
  }

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(grown, 0, 0, this.len);
    this.buf = grown;
  }
}

/**
 * The body of `GET /jobs/:id/logs`: `{logs, next_after_seq, dropped?, job}` with `logs` given as
 * JSON, the same bytes `JSON.stringify` makes of the whole answer.
 */
export function logsPageBody(logsJson: Buffer, nextAfterSeq: number, dropped: unknown, job: unknown): Buffer {
  const rest = `,"next_after_seq":${JSON.stringify(nextAfterSeq)}${dropped === undefined ? '' : `,"dropped":${JSON.stringify(dropped)}`},"job":${JSON.stringify(job)}}`;
  return Buffer.concat([Buffer.from('{"logs":'), logsJson, Buffer.from(rest)]);
}
