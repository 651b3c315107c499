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
});
