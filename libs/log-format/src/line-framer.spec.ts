import { LineFramer, utf8SafeCut } from './line-framer';

function frame(chunks: Buffer[], max = 1024): Buffer[] {
  const framer = new LineFramer(max);
  const out: Buffer[] = [];
  for (const c of chunks) framer.push(c, (l) => out.push(Buffer.from(l)));
  framer.flush((l) => out.push(Buffer.from(l)));
  return out;
}

describe('LineFramer', () => {
  it('splits on newlines and keeps a final line without one', () => {
    expect(frame([Buffer.from('a\nbb\nccc')]).map(String)).toEqual(['a', 'bb', 'ccc']);
  });

  it('keeps empty lines and emits nothing for an empty stream', () => {
    expect(frame([Buffer.from('\n\nx\n')]).map(String)).toEqual(['', '', 'x']);
    expect(frame([])).toEqual([]);
  });

  it('reassembles a UTF-8 character split across every possible chunk boundary', () => {
    const text = Buffer.from('héllo 世界 🎉 done\nsecond ✓\n');
    for (let size = 1; size <= 7; size++) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < text.length; i += size) chunks.push(text.subarray(i, i + size));
      expect(Buffer.concat(frame(chunks).map((l) => Buffer.concat([l, Buffer.from('\n')])))).toEqual(text);
    }
  });

  it('passes \\r, ANSI codes and invalid UTF-8 through byte for byte', () => {
    const raw = Buffer.concat([Buffer.from('\x1b[31mred\x1b[0m 50%\r100%'), Buffer.from([0xff, 0xfe, 0xc3])]);
    expect(frame([raw])).toEqual([raw]);
  });

  it('keeps a line of exactly the maximum whole and splits one byte more without loss', () => {
    const exact = Buffer.alloc(1024, 'a');
    expect(frame([exact, Buffer.from('\n')])).toEqual([exact]);
    const over = Buffer.alloc(1025, 'b');
    const pieces = frame([over]);
    expect(pieces.map((p) => p.length)).toEqual([1024, 1]);
    expect(Buffer.concat(pieces)).toEqual(over);
  });

  it('never cuts a multi-byte character when splitting a long line', () => {
    const line = Buffer.from('€'.repeat(1000)); // 3 bytes each
    const pieces = frame([line], 1024);
    for (const p of pieces) expect(p.toString('utf8')).toMatch(/^€+$/);
    expect(Buffer.concat(pieces)).toEqual(line);
  });

  it('splits a line that arrives in many small chunks', () => {
    const chunks = Array.from({ length: 3000 }, () => Buffer.from('z'));
    const pieces = frame(chunks, 1024);
    expect(pieces.map((p) => p.length)).toEqual([1024, 1024, 952]);
  });
});

describe('utf8SafeCut', () => {
  it('backs off to a lead byte, and keeps the cut for non-UTF-8 bytes', () => {
    const euro = Buffer.from('a€'); // 61 e2 82 ac
    expect(utf8SafeCut(euro, 2)).toBe(1);
    expect(utf8SafeCut(Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80]), 5)).toBe(5);
  });
});
