import { LogLevel, LogStream } from '@flashpods/contracts';
import { detectLevel } from './level.util';

describe('detectLevel', () => {
  it.each([
    [LogStream.Stdout, 'plain', LogLevel.Info],
    [LogStream.Stderr, 'plain', LogLevel.Error],
    [LogStream.Stdout, '{"level":"warn","msg":"x"}', LogLevel.Warn],
    [LogStream.Stderr, '  {"level":"INFO"}', LogLevel.Info],
    [LogStream.Stdout, '{"level":50}', LogLevel.Error],
    [LogStream.Stdout, '{"level":"nonsense"}', LogLevel.Info],
    [LogStream.Stdout, '{not json', LogLevel.Info],
    [LogStream.Stdout, '["level","error"]', LogLevel.Info],
  ])('%s %s → %s', (stream, text, level) => {
    expect(detectLevel(stream, Buffer.from(text))).toBe(level);
  });

  it('reads only the given range of a larger buffer', () => {
    const buf = Buffer.from('xx{"level":"warn"}{"level":"fatal"}');
    expect(detectLevel(LogStream.Stdout, buf, 2, 18)).toBe(LogLevel.Warn);
    expect(detectLevel(LogStream.Stdout, buf, 18, buf.length)).toBe(LogLevel.Fatal);
    expect(detectLevel(LogStream.Stderr, buf, 0, 2)).toBe(LogLevel.Error);
  });

  it.each([
    [9, LogLevel.Error],
    [10, LogLevel.Debug],
    [29, LogLevel.Debug],
    [30, LogLevel.Info],
    [39, LogLevel.Info],
    [40, LogLevel.Warn],
    [49, LogLevel.Warn],
    [50, LogLevel.Error],
    [59, LogLevel.Error],
    [60, LogLevel.Fatal],
    [70, LogLevel.Fatal],
  ])('maps pino level %d on stderr to %s (below 10: the stream decides)', (n, level) => {
    expect(detectLevel(LogStream.Stderr, Buffer.from(`{"level":${n}}`))).toBe(level);
    if (n >= 10) expect(detectLevel(LogStream.Stdout, Buffer.from(`{"level":${n}}`))).toBe(level);
  });

  it('knows the usual level names in any case', () => {
    const names: [string, LogLevel][] = [
      ['trace', LogLevel.Debug], ['DEBUG', LogLevel.Debug], ['notice', LogLevel.Info], ['Warning', LogLevel.Warn],
      ['err', LogLevel.Error], ['critical', LogLevel.Fatal], ['crit', LogLevel.Fatal], ['panic', LogLevel.Fatal],
    ];
    for (const [name, level] of names) expect([name, detectLevel(LogStream.Stdout, Buffer.from(`{"level":"${name}"}`))]).toEqual([name, level]);
  });

  it('ignores JSON on the system stream, and levels that are neither a name nor a number', () => {
    expect(detectLevel(LogStream.System, Buffer.from('{"level":"error"}'))).toBe(LogLevel.Info);
    expect(detectLevel(LogStream.Stdout, Buffer.from('{"level":[70]}'))).toBe(LogLevel.Info);
    expect(detectLevel(LogStream.Stdout, Buffer.from('{"level":true}'))).toBe(LogLevel.Info);
    expect(detectLevel(LogStream.Stderr, Buffer.from('{"msg":"no level"}'))).toBe(LogLevel.Error);
    expect(detectLevel(LogStream.Stdout, Buffer.from('{}'))).toBe(LogLevel.Info);
  });

  it('skips leading tabs as well as spaces, and nothing else', () => {
    expect(detectLevel(LogStream.Stdout, Buffer.from('\t \t{"level":"warn"}'))).toBe(LogLevel.Warn);
    // JSON.parse would skip a \r too; a line that starts with one (a redrawn terminal line) is text.
    expect(detectLevel(LogStream.Stdout, Buffer.from('\r{"level":"warn"}'))).toBe(LogLevel.Info);
    expect(detectLevel(LogStream.Stderr, Buffer.from(' \r{"level":"warn"}'))).toBe(LogLevel.Error);
  });

  it('parses JSON lines up to 64 KiB, and no longer ones', () => {
    const json = (bytes: number) => {
      const head = '{"level":"warn","pad":"';
      return Buffer.from(head + 'x'.repeat(bytes - head.length - 2) + '"}');
    };
    expect(json(64 * 1024).length).toBe(64 * 1024);
    expect(detectLevel(LogStream.Stdout, json(64 * 1024))).toBe(LogLevel.Warn);
    expect(detectLevel(LogStream.Stdout, json(64 * 1024 + 1))).toBe(LogLevel.Info);
    // The limit is on the range, not on the buffer around it.
    const big = Buffer.concat([Buffer.alloc(70 * 1024, 'z'), Buffer.from('{"level":"fatal"}')]);
    expect(detectLevel(LogStream.Stdout, big, 70 * 1024, big.length)).toBe(LogLevel.Fatal);
  });
});
