import { FlashpodsConfig } from '@flashpods/config';
import { LogKeep, LogLevel, LogStream } from '@flashpods/contracts';
import { formatTimePrefix, indexFileName, INDEX_RECORD_BYTES, logFileName, writeIndexRecord } from '@flashpods/log-format';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JobLogsService, LogQuery } from './job-logs.service';
import { logEntryView, storedLineText } from './log-entry.view';
import { LogLinesJson, logsPageBody } from './log-lines.json';

const T0 = Date.UTC(2026, 0, 2, 3, 4, 5, 6);

/** Texts a log holds: plain, JSON-escaped, multi-byte, broken UTF-8, control bytes, empty. */
const TEXTS: Buffer[] = [
  'hello world',
  'say "hi" to C:\\temp',
  'tab\there, cr\r',
  '\u001b[31mred\u001b[0m',
  'del \u007f and nul \u0000 and \u0001',
  'héllo wörld ✓ 🚀',
  '{"level":"warn","msg":"json line"}',
  '',
  ' ',
  '~}|{',
  '\u2028 line separators \u2029',
].map((s) => Buffer.from(s));
TEXTS.push(Buffer.from([0x61, 0xff, 0x62, 0xc3]), Buffer.from([0xe2, 0x82]), Buffer.from([0xed, 0xa0, 0x80]));

/** A stored line as the persister writes it: time prefix, text, newline. */
const stored = (ts: number, text: Buffer) => Buffer.concat([Buffer.from(formatTimePrefix(ts)), text, Buffer.from('\n')]);

describe('LogLinesJson', () => {
  it('writes exactly the JSON.stringify of the entries, for every kind of text, stream and level', () => {
    const out = new LogLinesJson(64); // small: the buffer has to grow
    const entries = [];
    let seq = 7;
    for (const stream of [LogStream.Stdout, LogStream.Stderr, LogStream.System, 9 as LogStream]) {
      for (const level of [LogLevel.Debug, LogLevel.Info, LogLevel.Warn, LogLevel.Error, LogLevel.Fatal, 0 as LogLevel]) {
        for (const [k, text] of TEXTS.entries()) {
          const ts = T0 + Math.floor(seq / 3); // runs of lines sharing their millisecond
          const bytes = Buffer.concat([Buffer.from('junk'), stored(ts, text), Buffer.from('more')]);
          out.add(seq, ts, stream, level, bytes, 4 + 15, 4 + 15 + text.length);
          entries.push(logEntryView(seq, ts, stream, level, storedLineText(stored(ts, text))));
          seq += k === 3 ? 1000 : 1;
        }
      }
    }
    const json = out.end();
    expect(out.count).toBe(entries.length);
    expect(json.toString('utf8')).toBe(JSON.stringify(entries));
    expect(Buffer.compare(json, Buffer.from(JSON.stringify(entries)))).toBe(0);
  });

  it('writes [] for no entries', () => {
    expect(new LogLinesJson().end().toString()).toBe('[]');
  });
});

describe('logsPageBody', () => {
  it('is the JSON.stringify of the whole answer, with or without `dropped`', () => {
    const logs = [logEntryView(1, T0, LogStream.Stdout, LogLevel.Info, 'a "b"')];
    const job = { id: 'x', status: 'completed', error: null, log: { bytes: 3, lines: 1 }, labels: { 'a"b': 'ü' } };
    const logsJson = Buffer.from(JSON.stringify(logs));
    expect(logsPageBody(logsJson, 5, undefined, job).toString()).toBe(JSON.stringify({ logs, next_after_seq: 5, job }));
    const dropped = { after_seq: 2, lines: 40 };
    expect(logsPageBody(logsJson, 45, dropped, job).toString()).toBe(JSON.stringify({ logs, next_after_seq: 45, dropped, job }));
  });
});

describe('JobLogsService.queryJson', () => {
  const JOB = '0b8f2d6e-35a1-4c51-9d3f-7c1a2b3c4d5e';
  let dir: string;
  let logs: JobLogsService;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fp-logs-json-'));
    logs = new JobLogsService({ logs: { dir } } as FlashpodsConfig);
    // 3,000 lines (a page of 1,000 is read in one run), the texts above in turn, both streams.
    const lines: Buffer[] = [];
    const index = Buffer.alloc(3000 * INDEX_RECORD_BYTES);
    let offset = 0;
    for (let i = 0; i < 3000; i++) {
      const ts = T0 + Math.floor(i / 7);
      const line = stored(ts, TEXTS[i % TEXTS.length]);
      const stream = i % 5 === 0 ? LogStream.Stderr : LogStream.Stdout;
      const level = stream === LogStream.Stderr ? LogLevel.Error : LogLevel.Info;
      writeIndexRecord({ seq: i + 1, ts, offset, length: line.length, stream, level, flags: 0 }, index, i * INDEX_RECORD_BYTES);
      lines.push(line);
      offset += line.length;
    }
    await writeFile(join(dir, logFileName(JOB)), Buffer.concat(lines));
    await writeFile(join(dir, indexFileName(JOB)), index);
  });

  afterAll(() => rm(dir, { recursive: true, force: true }));

  const cases: [string, Partial<LogQuery>][] = [
    ['the first page', {}],
    ['a page in the middle', { afterSeq: 1234, limit: 500 }],
    ['a whole page of 1,000', { afterSeq: 100, limit: 1000 }],
    ['the last lines, fewer than asked', { afterSeq: 2990, limit: 500 }],
    ['past the end', { afterSeq: 3000, limit: 10 }],
    ['far past the end', { afterSeq: 99999, limit: 10 }],
    ['filtered by stream (query, serialised)', { stream: [LogStream.Stderr], limit: 50 }],
    ['filtered by level', { level: [LogLevel.Error], afterSeq: 10, limit: 7 }],
    ['filtered by text', { q: 'WÖRLD', limit: 20 }],
    ['since', { since: T0 + 300, limit: 5 }],
  ];

  it.each(cases)('%s: the same page as query, as JSON', async (_name, given) => {
    const q: LogQuery = { afterSeq: 0, limit: 100, ...given };
    const page = await logs.query(JOB, q);
    const json = await logs.queryJson(JOB, q);
    expect(json.logsJson.toString()).toBe(JSON.stringify(page.logs));
    expect(json.nextAfterSeq).toBe(page.nextAfterSeq);
    expect(json.dropped).toBeUndefined();
  });

  it('a head_tail log is paged by query, gap report included', async () => {
    const q: LogQuery = { afterSeq: 2995, limit: 100 };
    const info = { keep: LogKeep.HeadTail, endedAtSeq: 3000 };
    const page = await logs.query(JOB, q, info);
    const json = await logs.queryJson(JOB, q, info);
    expect(json.logsJson.toString()).toBe(JSON.stringify(page.logs));
    expect(json.nextAfterSeq).toBe(page.nextAfterSeq);
  });

  it('a job with no stored log yet has an empty page, its cursor unchanged', async () => {
    const q: LogQuery = { afterSeq: 12, limit: 100 };
    const other = '1c9e3f7a-46b2-4d62-8e4a-8d2b3c4d5e6f';
    expect(await logs.queryJson(other, q)).toEqual({ logsJson: Buffer.from('[]'), nextAfterSeq: 12 });
    expect(await logs.query(other, q)).toEqual({ logs: [], nextAfterSeq: 12 });
  });
});
