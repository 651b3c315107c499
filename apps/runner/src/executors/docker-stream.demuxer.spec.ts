import { LogStream } from '@flashpods/contracts';
import { DockerStreamDemuxer } from './docker-stream.demuxer';

function frame(type: number, payload: string): Buffer {
  const header = Buffer.alloc(8);
  header[0] = type;
  header.writeUInt32BE(Buffer.byteLength(payload), 4);
  return Buffer.concat([header, Buffer.from(payload)]);
}

describe('DockerStreamDemuxer', () => {
  it('tags frames and survives any chunking of the transport', () => {
    const wire = Buffer.concat([frame(1, 'out one\n'), frame(2, 'err\n'), frame(1, ''), frame(1, 'tail')]);
    for (let size = 1; size <= wire.length; size++) {
      const d = new DockerStreamDemuxer();
      const got: [LogStream, string][] = [];
      for (let i = 0; i < wire.length; i += size) {
        d.push(wire.subarray(i, i + size), (s, p) => got.push([s, p.toString()]));
      }
      expect(got.filter(([, p]) => p !== '')).toEqual([
        [LogStream.Stdout, 'out one\n'],
        [LogStream.Stderr, 'err\n'],
        [LogStream.Stdout, 'tail'],
      ]);
      expect(d.pendingBytes).toBe(0);
    }
  });
});
