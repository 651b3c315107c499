import { LogStream } from '@flashpods/contracts';
import { ChunkDecodeError, decodeLines, encodeLines, streamEntryFields } from './chunk.codec';

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

  it('says where a chunk is cut: in a header, or in a line', () => {
    const one = encodeLines([{ seq: 1, ts: 1, stream: LogStream.Stdout, text: Buffer.from('abcdef') }]);
    const two = Buffer.concat([one, one]);
    expect(() => decodeLines(one.subarray(0, 5), 1)).toThrow(new ChunkDecodeError('truncated line header at byte 0'));
    expect(() => decodeLines(two.subarray(0, one.length + 12), 1)).toThrow(
      new ChunkDecodeError(`truncated line header at byte ${one.length}`),
    );
    expect(() => decodeLines(two.subarray(0, one.length + 13), 1)).toThrow(
      new ChunkDecodeError(`line of 6 bytes overruns chunk at byte ${one.length}`),
    );
    expect(() => decodeLines(one.subarray(0, 13), 1)).toThrow(ChunkDecodeError);
    expect(decodeLines(Buffer.alloc(0), 1)).toEqual([]);
  });
});

describe('streamEntryFields', () => {
  it('pairs names with values and ignores a name without a value', () => {
    const raw = ['t', 'lines', 's', '7', 'd', 'xyz', 'odd'].map((v) => Buffer.from(v));
    const fields = streamEntryFields(raw);
    expect([...fields.keys()]).toEqual(['t', 's', 'd']);
    expect(fields.get('t')).toEqual(Buffer.from('lines'));
    expect(fields.get('s')).toEqual(Buffer.from('7'));
    expect(fields.get('d')).toEqual(Buffer.from('xyz'));
    expect(streamEntryFields([])).toEqual(new Map());
    expect(streamEntryFields([Buffer.from('alone')])).toEqual(new Map());
  });
});
