import { LogEntry } from './api.types';
import { formatLine, matchesFilter } from './log-line.format';

const entry = (over: Partial<LogEntry>): LogEntry => ({ seq: 1, ts: '2026-11-21T12:00:00.000Z', stream: 'stdout', level: 'info', line: 'hello', ...over });
const plain = { json: false, timestamps: false, system: true };

describe('formatLine', () => {
  it('sends stdout to stdout and stderr and system lines to stderr, each with a newline', () => {
    expect(formatLine(entry({}), plain)).toEqual({ to: 'stdout', text: 'hello\n' });
    expect(formatLine(entry({ stream: 'stderr', line: 'oops' }), plain)).toEqual({ to: 'stderr', text: 'oops\n' });
    expect(formatLine(entry({ stream: 'system', line: 'exited with code 3' }), plain)).toEqual({ to: 'stderr', text: 'exited with code 3\n' });
  });

  it('hides system lines unless asked', () => {
    expect(formatLine(entry({ stream: 'system' }), { ...plain, system: false })).toBeUndefined();
    expect(formatLine(entry({ stream: 'stdout' }), { ...plain, system: false })).toEqual({ to: 'stdout', text: 'hello\n' });
  });

  it('prefixes the full timestamp', () => {
    expect(formatLine(entry({}), { ...plain, timestamps: true })).toEqual({ to: 'stdout', text: '2026-11-21T12:00:00.000Z hello\n' });
  });

  it('writes every stream as JSON on stdout, system lines included', () => {
    const e = entry({ stream: 'system', line: 'a "quoted"\tline' });
    const l = formatLine(e, { json: true, timestamps: true, system: false })!;
    expect(l.to).toBe('stdout');
    expect(l.text.endsWith('\n')).toBe(true);
    expect(JSON.parse(l.text)).toEqual(e);
  });

  it('keeps the text byte for byte: ANSI codes, carriage returns', () => {
    expect(formatLine(entry({ line: '\x1b[31mred\x1b[0m 50%\r100%' }), plain)!.text).toBe('\x1b[31mred\x1b[0m 50%\r100%\n');
  });
});

describe('matchesFilter', () => {
  it('matches everything without filters', () => {
    expect(matchesFilter(entry({}), {})).toBe(true);
  });

  it('filters by stream', () => {
    expect(matchesFilter(entry({ stream: 'stderr' }), { stream: 'stderr' })).toBe(true);
    expect(matchesFilter(entry({ stream: 'stdout' }), { stream: 'stderr' })).toBe(false);
  });

  it('keeps lines at or after since', () => {
    const at = Date.parse('2026-11-21T12:00:00.000Z');
    expect(matchesFilter(entry({}), { since: at })).toBe(true);
    expect(matchesFilter(entry({}), { since: at + 1 })).toBe(false);
  });

  it('greps case-insensitively, as the API does', () => {
    expect(matchesFilter(entry({ line: 'Build FAILED' }), { grep: 'failed' })).toBe(true);
    expect(matchesFilter(entry({ line: 'Build ok' }), { grep: 'failed' })).toBe(false);
  });

  it('needs every filter to match', () => {
    expect(matchesFilter(entry({ stream: 'stderr', line: 'x' }), { stream: 'stderr', grep: 'y' })).toBe(false);
  });
});
