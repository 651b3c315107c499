import { LogLine, LogStream } from '@flashpods/contracts';

/** Per line: stream (u8), timestamp in ms (f64), length (u32), then the bytes. */
export const LINE_HEADER_BYTES = 13;

function encodedLineSize(text: Buffer): number {
  return LINE_HEADER_BYTES + text.length;
}

/** Encodes consecutive lines for one stream entry; their seqs are implied by the entry's first seq. */
export function encodeLines(lines: readonly LogLine[]): Buffer {
  let size = 0;
  for (const l of lines) size += encodedLineSize(l.text);
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const l of lines) {
    out.writeUInt8(l.stream, at);
    out.writeDoubleBE(l.ts, at + 1);
    out.writeUInt32BE(l.text.length, at + 9);
    l.text.copy(out, at + LINE_HEADER_BYTES);
    at += LINE_HEADER_BYTES + l.text.length;
  }
  return out;
}

export class ChunkDecodeError extends Error {}

/** The fields of a Redis stream entry read as Buffers (`[name, value, name, value, …]`). */
export function streamEntryFields(raw: readonly Buffer[]): Map<string, Buffer> {
  const fields = new Map<string, Buffer>();
  for (let i = 0; i + 1 < raw.length; i += 2) fields.set(raw[i].toString(), raw[i + 1]);
  return fields;
}

export function decodeLines(data: Buffer, firstSeq: number): LogLine[] {
  const lines: LogLine[] = [];
  let at = 0;
  while (at < data.length) {
    if (at + LINE_HEADER_BYTES > data.length) throw new ChunkDecodeError(`truncated line header at byte ${at}`);
    const stream = data.readUInt8(at) as LogStream;
    const ts = data.readDoubleBE(at + 1);
    const len = data.readUInt32BE(at + 9);
    const start = at + LINE_HEADER_BYTES;
    if (start + len > data.length) throw new ChunkDecodeError(`line of ${len} bytes overruns chunk at byte ${at}`);
    lines.push({ seq: firstSeq + lines.length, ts, stream, text: data.subarray(start, start + len) });
    at = start + len;
  }
  return lines;
}
