import { LogEntry } from './api.types';

export interface LineFormat {
  /** One JSON object per line on stdout, every stream included. */
  json: boolean;
  /** Prefix each line with its full ISO timestamp. */
  timestamps: boolean;
  /** Whether `system` lines (image pulled, exited with code N...) are shown. */
  system: boolean;
}

export interface FormattedLine {
  to: 'stdout' | 'stderr';
  text: string;
}

/**
 * Where a line goes and how it reads: stdout lines to stdout, stderr and system lines to stderr
 * (as `docker logs` separates them), or everything as JSON lines on stdout. A line's text never
 * holds its own newline; one is added.
 */
export function formatLine(e: LogEntry, f: LineFormat): FormattedLine | undefined {
  if (f.json) return { to: 'stdout', text: JSON.stringify(e) + '\n' };
  if (e.stream === 'system' && !f.system) return undefined;
  const text = (f.timestamps ? `${e.ts} ` : '') + e.line + '\n';
  return { to: e.stream === 'stdout' ? 'stdout' : 'stderr', text };
}

export interface LineFilter {
  stream?: string;
  /** Epoch ms: lines at or after. */
  since?: number;
  /** Case-insensitive substring, as the API's `q`. */
  grep?: string;
}

/** The API's filters (`stream`, `since`, `q`), applied to lines that arrive over the live stream. */
export function matchesFilter(e: LogEntry, f: LineFilter): boolean {
  if (f.stream !== undefined && e.stream !== f.stream) return false;
  if (f.since !== undefined && Date.parse(e.ts) < f.since) return false;
  if (f.grep !== undefined && !e.line.toLowerCase().includes(f.grep.toLowerCase())) return false;
  return true;
}
