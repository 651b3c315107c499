import { LogStream } from '@flashpods/contracts';
import { ChunkDecodeError, decodeLines, encodeLines } from './chunk.codec';

describe('chunk codec', () => {
  it('round-trips lines with binary content and assigns consecutive seqs', () => {
    const lines = [
      { seq: 7, ts: 1700000000123, stream: LogStream.Stdout, text: Buffer.from('hello') },
      { seq: 8, ts: 1700000000124.5, stream: LogStream.Stderr, text: Buffer.from([0, 0xff, 0x0a]) },
      { seq: 9, ts: 1700000000125, stream: LogStream.System, text: Buffer.alloc(0) },
    ];
    expect(decodeLines(encodeLines(lines), 7)).toEqual(lines);
  });

  it('refuses a chunk cut short', () => {
    const data = encodeLines([{ seq: 1, ts: 1, stream: LogStream.Stdout, text: Buffer.from('abcdef') }]);
    expect(() => decodeLines(data.subarray(0, data.length - 1), 1)).toThrow(ChunkDecodeError);
  });
});
