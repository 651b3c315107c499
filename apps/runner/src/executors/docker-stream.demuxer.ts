import { LogStream } from '@flashpods/contracts';

const HEADER_BYTES = 8;

/**
 * Splits Docker's multiplexed attach stream (8-byte header: stream type, 3 zero bytes, u32 size;
 * then the payload) into tagged payloads, whatever the chunking of the transport.
 */
export class DockerStreamDemuxer {
  private buffered: Buffer = Buffer.alloc(0);

  /** Calls `onFrame` for each complete frame in order; keeps a partial frame for the next push. */
  push(chunk: Buffer, onFrame: (stream: LogStream.Stdout | LogStream.Stderr, payload: Buffer) => void): void {
    let buf = this.buffered.length ? Buffer.concat([this.buffered, chunk]) : chunk;
    let at = 0;
    while (buf.length - at >= HEADER_BYTES) {
      const type = buf[at];
      const size = buf.readUInt32BE(at + 4);
      if (buf.length - at < HEADER_BYTES + size) break;
      const payload = buf.subarray(at + HEADER_BYTES, at + HEADER_BYTES + size);
      // 0 is stdin (never attached), 1 stdout, 2 stderr; anything else is a protocol error upstream.
      onFrame(type === 2 ? LogStream.Stderr : LogStream.Stdout, payload);
      at += HEADER_BYTES + size;
    }
    this.buffered = at === buf.length ? Buffer.alloc(0) : Buffer.from(buf.subarray(at));
    buf = Buffer.alloc(0);
  }

  get pendingBytes(): number {
    return this.buffered.length;
  }
}
