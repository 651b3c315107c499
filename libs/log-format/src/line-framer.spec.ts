import { LineFramer, OnLine, utf8SafeCut } from './line-framer';
import { SecretMasker } from './secret-masker';

/** A framer's callback that hands each line on as a Buffer (a view of the range it was given). */
const asBuffer =
  (fn: (line: Buffer) => void): OnLine =>
  (buf, start, end) =>
    fn(buf.subarray(start, end));

function frame(chunks: Buffer[], max = 1024): Buffer[] {
  const framer = new LineFramer(max);
  const out: Buffer[] = [];
  for (const c of chunks) framer.push(c, asBuffer((l) => out.push(Buffer.from(l))));
  framer.flush(asBuffer((l) => out.push(Buffer.from(l))));
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

  it('splits a line longer than the maximum that arrives whole, newline included, in one chunk', () => {
    // The path that hands a line on as a view must still split it.
    const pieces = frame([Buffer.from(`${'x'.repeat(1024 + 10)}\nnext\n`)]);
    expect(pieces.map((p) => p.length)).toEqual([1024, 10, 4]);
    expect(Buffer.concat(pieces.slice(0, 2)).toString()).toBe('x'.repeat(1034));
  });

  it('never cuts a multi-byte character when splitting a long line', () => {
    const line = Buffer.from('€'.repeat(1000)); // 3 bytes each
    const pieces = frame([line], 1024);
    for (const p of pieces) expect(p.toString('utf8')).toMatch(/^€+$/);
    expect(Buffer.concat(pieces)).toEqual(line);
  });

  it('keeps the rest of a split line of exactly the maximum until its newline', () => {
    const pieces = frame([Buffer.alloc(1000, 'a'), Buffer.concat([Buffer.alloc(1048, 'b'), Buffer.from('\nnext')])]);
    expect(pieces.map((p) => p.length)).toEqual([1024, 1024, 4]);
    expect(pieces[2].toString()).toBe('next');
  });

  it('counts the bytes of the line being built', () => {
    const framer = new LineFramer(8);
    const lines: string[] = [];
    framer.push(Buffer.from('abc'), asBuffer((l) => lines.push(String(l))));
    expect(framer.bufferedBytes).toBe(3);
    framer.push(Buffer.from('defghij'), asBuffer((l) => lines.push(String(l))));
    expect(lines).toEqual(['abcdefgh']);
    expect(framer.bufferedBytes).toBe(2);
    framer.push(Buffer.from('\n'), asBuffer((l) => lines.push(String(l))));
    expect(framer.bufferedBytes).toBe(0);
    expect(lines).toEqual(['abcdefgh', 'ij']);
  });

  it('hands out a line that arrived in one chunk without copying it', () => {
    const chunk = Buffer.from('whole\n');
    const framer = new LineFramer(1024);
    const ranges: [Buffer, number, number][] = [];
    framer.push(chunk, (buf, start, end) => ranges.push([buf, start, end]));
    // A range of the chunk itself, not a copy from Node's buffer pool.
    expect(ranges).toHaveLength(1);
    expect(ranges[0][0]).toBe(chunk);
    expect(ranges[0].slice(1)).toEqual([0, 5]);
  });

  it('hands out a line whose newline comes with the next chunk without copying it either', () => {
    const chunk = Buffer.from('whole');
    const framer = new LineFramer(1024);
    const lines: Buffer[] = [];
    framer.push(chunk, asBuffer((l) => lines.push(l)));
    framer.push(Buffer.from('\nnext'), asBuffer((l) => lines.push(l)));
    expect(lines.map(String)).toEqual(['whole']);
    expect(lines[0].buffer).toBe(chunk.buffer);
    expect(lines[0].byteOffset).toBe(chunk.byteOffset);
    expect(framer.bufferedBytes).toBe(4);
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
    expect(utf8SafeCut(Buffer.from('a🎉b'), 4)).toBe(1); // f0 9f 8e 89: back three bytes
    expect(utf8SafeCut(Buffer.from('a🎉b'), 5)).toBe(5);
  });

  it('never answers an empty cut: a character at the very start is cut through', () => {
    expect(utf8SafeCut(Buffer.from('€x'), 2)).toBe(2);
    expect(utf8SafeCut(Buffer.from('€x'), 1)).toBe(1);
  });

  it('looks back at most three bytes for a lead byte', () => {
    expect(utf8SafeCut(Buffer.from([0x61, 0xf0, 0x80, 0x80, 0x80, 0x80]), 5)).toBe(5);
    expect(utf8SafeCut(Buffer.from([0x61, 0x61, 0xf0, 0x80, 0x80, 0x80]), 5)).toBe(2);
  });
});

describe('LineFramer with a SecretMasker guard', () => {
  const secret = 'TOPSECRET-0123456789';
  const masker = new SecretMasker([secret]);
  const frameMasked = (chunks: Buffer[], max: number) =>
    (() => {
      const framer = new LineFramer(max, masker);
      const out: string[] = [];
      const on = asBuffer((l) => out.push(masker.mask(l).toString()));
      for (const c of chunks) framer.push(c, on);
      framer.flush(on);
      return out;
    })();

  it('never leaves part of a secret in a piece when a long line is split, at any offset and chunking', () => {
    const max = 1024;
    for (let offset = max - secret.length - 2; offset <= max + 2; offset++) {
      const line = Buffer.from('a'.repeat(offset) + secret + 'b'.repeat(1500));
      for (const size of [1, 7, 100, line.length]) {
        const chunks: Buffer[] = [];
        for (let i = 0; i < line.length; i += size) chunks.push(line.subarray(i, i + size));
        const pieces = frameMasked(chunks, max);
        const joined = pieces.join('');
        expect([offset, size, joined.includes('[MASKED]')]).toEqual([offset, size, true]);
        for (let k = 4; k <= secret.length; k++) {
          for (const p of pieces) expect(p.includes(secret.slice(0, k)) || p.includes(secret.slice(-k))).toBe(false);
        }
        expect(joined).toBe('a'.repeat(offset) + '[MASKED]' + 'b'.repeat(1500));
        for (const p of pieces) expect(Buffer.byteLength(p)).toBeLessThanOrEqual(max);
      }
    }
  });
});
