import { EventEmitter } from 'node:events';
import type { Response } from 'express';
import { FeedClient, FeedLine, httpChunk, JobFeed, lineEvent } from './job-feed';
import { LogEntryView } from './log-entry.view';

/** A response whose socket holds `capacity` bytes until `drain()` empties it, like a slow peer. */
class FakeResponse extends EventEmitter {
  received = '';
  pending = '';
  ended = false;
  constructor(private readonly capacity = Infinity) {
    super();
  }
  get writableLength(): number {
    return this.pending.length;
  }
  write(data: Buffer): boolean {
    this.pending += data.toString();
    if (this.pending.length <= this.capacity) this.flush();
    return this.pending.length === 0;
  }
  flush(): void {
    this.received += this.pending;
    this.pending = '';
  }
  drain(): void {
    this.flush();
    this.emit('drain');
  }
  end(): void {
    this.ended = true;
  }
  /** Seqs of the `line` events received, and the names of the other events. */
  events(): { seqs: number[]; others: string[] } {
    const seqs: number[] = [];
    const others: string[] = [];
    for (const block of this.received.split('\n\n')) {
      const name = /^event: (\w+)$/m.exec(block)?.[1];
      if (name === 'line') seqs.push(Number(/^id: (\d+)$/m.exec(block)![1]));
      else if (name) others.push(name);
    }
    return { seqs, others };
  }
}

const view = (seq: number): LogEntryView => ({ seq, ts: new Date(0).toISOString(), stream: 'stdout', level: 'info', line: `line ${seq}` });
const line = (seq: number): FeedLine => ({ seq, event: lineEvent(view(seq)) });
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const tick = () => new Promise((r) => setImmediate(r));
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await tick();
}

/** A feed over a "file" holding seqs 1..stored, with small limits so the tests reach them. */
function setup(stored: () => number, limits: Partial<JobFeed['limits']> = {}) {
  const reads: number[] = [];
  const feed = new JobFeed(
    'job',
    async (after, max) => {
      reads.push(after);
      return range(after + 1, Math.min(stored(), after + max)).map(view);
    },
    { clientBufferBytes: 2000, ringLines: 50, ringBytes: 1e9, catchUpStallMs: 200, ...limits },
    undefined,
    (events) => Buffer.from(events),
  );
  const attach = (res: FakeResponse, after = 0) => {
    const c = new FeedClient(feed, res as unknown as Response, after, () => feed.remove(c), res);
    feed.add(c);
    return c;
  };
  return { feed, attach, reads };
}

describe('JobFeed', () => {
  it('fans every line out once, in order, to many clients, serialising each line once', async () => {
    const { feed, attach } = setup(() => 0);
    const clients = Array.from({ length: 100 }, () => new FakeResponse());
    clients.forEach((r) => attach(r));
    await settle();
    for (let s = 1; s <= 500; s += 5) feed.push(range(s, s + 4).map(line));
    feed.finish({ status: 'completed', exit_code: 0, error_code: null }, false);
    await settle();
    for (const r of clients) {
      expect(r.events()).toEqual({ seqs: range(1, 500), others: ['end'] });
      expect(r.ended).toBe(true);
    }
    expect(feed.clients.size).toBe(0);
  });

  it('many clients: live writes are coalesced, at most one per coalesceMs, each with every line since the last; status and end keep their place after the lines', async () => {
    const { feed, attach } = setup(() => 0, { coalesceClients: 3, coalesceMs: 150 });
    const clients = Array.from({ length: 3 }, () => new FakeResponse());
    const writes = clients.map(() => 0);
    clients.forEach((r, i) => {
      const write = r.write.bind(r);
      r.write = (s: Buffer) => {
        if (s.includes('event: line')) writes[i]++;
        return write(s);
      };
      attach(r);
    });
    await settle();
    feed.push(range(1, 3).map(line)); // the first batch after a quiet spell goes at once
    expect(clients.map((r) => r.events().seqs)).toEqual(clients.map(() => range(1, 3)));
    feed.push([line(4)]);
    feed.push([line(5)]);
    expect(clients[0].events().seqs).toEqual(range(1, 3)); // held back…
    await new Promise((r) => setTimeout(r, 250));
    expect(clients.map((r) => r.events().seqs)).toEqual(clients.map(() => range(1, 5))); // …then written together
    expect(writes).toEqual([2, 2, 2]);
    feed.push([line(6)]);
    feed.statusChanged('running'); // a status waits for nothing, but goes after line 6
    expect(clients[0].events()).toEqual({ seqs: range(1, 6), others: ['status'] });
    feed.push([line(7)]);
    feed.finish({ status: 'completed', exit_code: 0, error_code: null }, false);
    await settle();
    for (const r of clients) {
      expect(r.events()).toEqual({ seqs: range(1, 7), others: ['status', 'end'] });
      // In the bytes as sent: line 6, then the status, then line 7, then the end.
      const at = (s: string) => r.received.indexOf(s);
      expect(at('id: 6\n')).toBeLessThan(at('event: status'));
      expect(at('event: status')).toBeLessThan(at('id: 7\n'));
      expect(at('id: 7\n')).toBeLessThan(at('event: end'));
    }
  });

  /** CPU time of this process, in ms. */
  const cpuMs = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };

  it('many clients: when a round of writes takes much CPU, the next waits twice that', async () => {
    const { feed, attach } = setup(() => 0, { coalesceClients: 2, coalesceMs: 1 });
    const rounds: number[] = [];
    const clients = Array.from({ length: 2 }, () => new FakeResponse());
    clients.forEach((r, i) => {
      const write = r.write.bind(r);
      r.write = (s: Buffer) => {
        if (s.includes('event: line')) {
          if (i === 0) rounds.push(performance.now());
          // A write that costs 10 ms of CPU and of the clock (however long a loaded machine takes to
          // give it the CPU): a round of 20.
          const cpuUntil = cpuMs() + 10;
          const clockUntil = performance.now() + 10;
          while (cpuMs() < cpuUntil || performance.now() < clockUntil);
        }
        return write(s);
      };
      attach(r);
    });
    await settle();
    for (let s = 1; s <= 30; s++) {
      feed.push([line(s)]);
      await new Promise((r) => setTimeout(r, 5));
    }
    // Until every client has the last line (the rounds are spaced by CPU time, however slow the machine is to give it).
    for (const until = Date.now() + 8000; clients.some((r) => !r.events().seqs.includes(30)) && Date.now() < until; ) await new Promise((r) => setTimeout(r, 10));
    for (const r of clients) expect(r.events().seqs).toEqual(range(1, 30));
    const gaps = rounds.slice(1).map((t, i) => t - rounds[i]);
    expect(gaps.length).toBeGreaterThan(2);
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(38); // 2 × ~20 ms, not coalesceMs (1 ms)
  });

  it('many clients: a round that took long on the clock but little CPU (the API preempted) does not hold the next', async () => {
    const { feed, attach } = setup(() => 0, { coalesceClients: 2, coalesceMs: 1 });
    const rounds: number[] = [];
    const asleep = new Int32Array(new SharedArrayBuffer(4));
    let next = 2;
    const clients = Array.from({ length: 2 }, () => new FakeResponse());
    clients.forEach((r, i) => {
      const write = r.write.bind(r);
      r.write = (s: Buffer) => {
        if (s.includes('event: line')) {
          if (i === 0) {
            rounds.push(performance.now());
            // The next line is there as soon as this round ends: only the feed's wait can space the rounds.
            if (next <= 12) setImmediate((seq: number) => feed.push([line(seq)]), next++);
          }
          // 10 ms off the CPU, as when the process is preempted: a round of 20 ms on the clock.
          Atomics.wait(asleep, 0, 0, 10);
        }
        return write(s);
      };
      attach(r);
    });
    await settle();
    feed.push([line(1)]);
    for (const until = Date.now() + 10000; rounds.length < 12 && Date.now() < until; ) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 50));
    for (const r of clients) expect(r.events().seqs).toEqual(range(1, 12));
    const gaps = rounds.slice(1).map((t, i) => t - rounds[i]);
    // Each round follows the last as it ends (about 20 ms), not after twice its clock time (40).
    expect(Math.min(...gaps)).toBeLessThan(35);
  });

  it('few clients: every batch is written as it comes', async () => {
    const { feed, attach } = setup(() => 0, { coalesceClients: 3, coalesceMs: 60000 });
    const a = new FakeResponse();
    const b = new FakeResponse();
    attach(a);
    attach(b);
    await settle();
    feed.push([line(1)]);
    feed.push([line(2)]);
    expect(a.events().seqs).toEqual([1, 2]);
    expect(b.events().seqs).toEqual([1, 2]);
  });

  it('a feed whose last client left holds no timer', async () => {
    const { feed, attach } = setup(() => 0, { coalesceClients: 1, coalesceMs: 60000 });
    const a = new FakeResponse();
    const b = new FakeResponse();
    attach(a);
    attach(b);
    await settle();
    const timers = () => process.getActiveResourcesInfo().filter((t) => t === 'Timeout').length;
    const before = timers();
    feed.push([line(1)]);
    feed.push([line(2)]); // waits 60 s for its write
    expect(timers()).toBe(before + 1);
    a.emit('close');
    expect(timers()).toBe(before + 1); // b still waits for line 2
    b.emit('close'); // the last client goes the way a closed request does
    expect(feed.clients.size).toBe(0);
    expect(timers()).toBe(before);
  });

  it('a stalled client drops out of live without holding anyone up, then catches up from memory and the file, once each line', async () => {
    let stored = 0;
    const { feed, attach, reads } = setup(() => stored);
    const fast = new FakeResponse();
    const slow = new FakeResponse(0); // nothing leaves its socket until drained
    attach(fast);
    const c = attach(slow);
    await settle();
    for (let s = 1; s <= 1000; s += 10) {
      feed.push(range(s, s + 9).map(line));
      stored = s + 9 - 100; // the persister is 100 lines behind the stream
    }
    await settle();
    expect(fast.events().seqs).toEqual(range(1, 1000));
    // The slow one holds at most its buffer plus one batch, and is no longer fed live.
    expect(slow.pending.length).toBeLessThan(2000 + 2000);
    expect(c.live).toBe(false);
    expect(feed.counters.overflows).toBe(1);
    stored = 1000;
    for (let i = 0; i < 200 && slow.events().seqs.length < 1000; i++) {
      slow.drain();
      await settle();
    }
    expect(slow.events().seqs).toEqual(range(1, 1000));
    expect(reads.length).toBeGreaterThan(0); // the ring (50 lines) no longer had the start: the file did
    expect(c.live).toBe(true);
    // Back in live: the next lines come as they arrive.
    feed.push([line(1001)]);
    slow.drain();
    expect(slow.events().seqs.slice(-1)).toEqual([1001]);
  });

  it('a client catching up, from memory or the file, has at most one write of about its buffer unsent at a time', async () => {
    const stored = 600;
    const { feed, attach } = setup(() => stored, { ringLines: 400 });
    feed.push(range(201, 600).map(line)); // 1..200 only in the file, 201..600 in memory too
    const lineBytes = line(600).event.length;
    const res = new FakeResponse(0);
    const writes: number[] = [];
    const write = res.write.bind(res);
    res.write = (s: Buffer) => {
      if (s.includes('event: line')) writes.push(s.length);
      return write(s);
    };
    const other = new FakeResponse(0);
    attach(res);
    attach(other);
    await settle();
    for (let i = 0; i < 200 && res.events().seqs.length < 600; i++) {
      expect(res.pending.length).toBeLessThanOrEqual(2000 + lineBytes);
      res.drain();
      other.drain();
      await settle();
    }
    expect(res.events().seqs).toEqual(range(1, 600));
    expect(other.events().seqs).toEqual(range(1, 600));
    expect(writes.length).toBeGreaterThan(600 * lineBytes / (2000 + lineBytes));
    expect(Math.max(...writes)).toBeLessThanOrEqual(2000 + lineBytes);
  });

  it('clients catching up from memory at the same seq share one batch', () => {
    const { feed } = setup(() => 0);
    feed.push(range(1, 40).map(line));
    const a = feed.catchUpBatch(10);
    expect(feed.catchUpBatch(10)).toBe(a);
    expect(a.data.length).toBeLessThanOrEqual(2000);
    expect(a.data.toString().startsWith(line(11).event)).toBe(true);
    feed.push([line(41)]); // the ring changed: a new batch
    expect(feed.catchUpBatch(10)).not.toBe(a);
  });

  it('clients behind together read the file together: one read per batch, not one per client', async () => {
    const { feed, attach, reads } = setup(() => 3000, { ringLines: 10 });
    feed.push(range(2991, 3000).map(line));
    const clients = Array.from({ length: 20 }, () => new FakeResponse());
    clients.forEach((r) => attach(r));
    for (let i = 0; i < 50 && clients.some((r) => r.events().seqs.length < 3000); i++) await settle();
    for (const r of clients) expect(r.events().seqs).toEqual(range(1, 3000));
    expect(reads).toEqual([0, 1000, 2000]); // 1..2990 from the file in reads of ≤ 1,000 lines, each read once
  });

  it('frames each write as one HTTP chunk, its size in bytes', () => {
    const chunk = httpChunk('data: "é ✓"\n\n');
    const body = Buffer.from('data: "é ✓"\n\n');
    expect(chunk.equals(Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n')]))).toBe(true);
  });

  it('a new client resuming after a seq gets what follows from the file, then live, with no gap or duplicate', async () => {
    let stored = 300;
    const { feed, attach } = setup(() => stored);
    feed.push(range(251, 300).map(line)); // the stream was trimmed to 251 before the feed first read it
    const res = new FakeResponse();
    attach(res, 120);
    await settle();
    feed.push(range(301, 310).map(line));
    stored = 310;
    await settle();
    expect(res.events().seqs).toEqual(range(121, 310));
  });

  it('lines the stream lost before the feed read them (stored, then trimmed) are read from the file once for the feed: its live clients stay live and get each line once, in order', async () => {
    let stored = 0;
    const { feed, attach, reads } = setup(() => stored);
    const clients = Array.from({ length: 20 }, () => new FakeResponse());
    clients.forEach((r) => attach(r));
    await settle();
    feed.push(range(1, 10).map(line));
    reads.length = 0;
    stored = 30; // the persister stored 11..30 and trimmed them before the feed's next read
    feed.push(range(31, 35).map(line));
    feed.push(range(36, 40).map(line));
    await settle();
    for (const r of clients) expect(r.events()).toEqual({ seqs: range(1, 40), others: [] });
    expect(reads).toEqual([10]);
    expect(feed.counters.overflows).toBe(0);
    expect([...feed.clients].every((c) => c.live)).toBe(true);
  });

  it('what the stream brings while the lost lines are read waits its turn: lines, status and end keep their order', async () => {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const feed = new JobFeed(
      'job',
      async (after, max) => {
        await released;
        return range(after + 1, Math.min(30, after + max)).map(view);
      },
      { clientBufferBytes: 2000, ringLines: 50, ringBytes: 1e9, catchUpStallMs: 200 },
      undefined,
      (events) => Buffer.from(events),
    );
    const res = new FakeResponse();
    const c = new FeedClient(feed, res as unknown as Response, 0, () => feed.remove(c), res);
    feed.push(range(1, 10).map(line));
    feed.add(c);
    await settle();
    expect(c.live).toBe(true);
    feed.push(range(31, 32).map(line));
    feed.statusChanged('running');
    feed.push(range(33, 34).map(line));
    feed.finish({ status: 'completed', exit_code: 0, error_code: null }, false);
    await settle();
    expect(res.events().seqs).toEqual(range(1, 10)); // nothing overtakes the lines being read
    release();
    await settle();
    expect(res.events()).toEqual({ seqs: range(1, 34), others: ['status', 'end'] });
    const at = (s: string) => res.received.indexOf(s);
    expect(at('id: 32\n')).toBeLessThan(at('event: status'));
    expect(at('event: status')).toBeLessThan(at('id: 33\n'));
  });

  it('head_tail: a live client past a gap the file does not close follows on after it', async () => {
    const { feed, attach, reads } = setup(() => 10);
    feed.gaps = true;
    const res = new FakeResponse();
    const c = attach(res);
    await settle();
    feed.push(range(1, 10).map(line));
    feed.push(range(40, 45).map(line)); // 11..39 were dropped from the log's middle
    await new Promise((r) => setTimeout(r, 400));
    feed.push(range(46, 50).map(line));
    await settle();
    expect(res.events()).toEqual({ seqs: [...range(1, 10), ...range(40, 50)], others: [] });
    expect(c.closed).toBe(false);
    expect(reads.length).toBeGreaterThan(0);
  });

  it('a client whose lines are neither in memory nor in the file is closed with a reason, its timer gone', async () => {
    const { feed, attach } = setup(() => 0);
    feed.push(range(500, 520).map(line));
    const res = new FakeResponse();
    const c = attach(res, 0);
    await new Promise((r) => setTimeout(r, 400));
    expect(res.events().others).toEqual(['error']);
    expect(res.received).toContain('"reason":"behind"');
    expect(res.ended).toBe(true);
    expect(c.closed).toBe(true);
    expect(feed.counters.failed).toBe(1);
  });

  it('head_tail: lines trimmed from the stream that the file does not have were dropped (the gap): the client follows on after them', async () => {
    const { feed, attach } = setup(() => 100);
    feed.gaps = true;
    feed.push(range(500, 520).map(line)); // 101..499 stored past the head, then rotated away: not kept
    const res = new FakeResponse();
    const c = attach(res, 0);
    await new Promise((r) => setTimeout(r, 400));
    feed.push(range(521, 530).map(line));
    await settle();
    expect(res.events()).toEqual({ seqs: [...range(1, 100), ...range(500, 530)], others: [] });
    expect(c.closed).toBe(false);
    expect(feed.counters.failed).toBe(0);
  });

  it('a client of a feed that has read no line yet (the stream trimmed of all it had) gets the stored lines at once, then live', async () => {
    let stored = 5;
    const { feed, attach } = setup(() => stored);
    feed.statusChanged('running'); // all the stream still had: a status entry
    const res = new FakeResponse();
    attach(res, 0);
    await settle();
    expect(res.events()).toEqual({ seqs: range(1, 5), others: ['status'] });
    stored = 7;
    feed.push(range(6, 7).map(line));
    await settle();
    expect(res.events().seqs).toEqual(range(1, 7));
  });

  it('a job ended in Postgres only (file complete) ends its clients after the whole file', async () => {
    const { feed, attach } = setup(() => 42);
    const res = new FakeResponse();
    attach(res);
    await settle();
    feed.finish({ status: 'cancelled', exit_code: null, error_code: null }, true);
    await settle();
    expect(res.events()).toEqual({ seqs: range(1, 42), others: ['end'] });
    expect(res.received).toContain('"status":"cancelled"');
  });

  it('a client that goes away leaves no listener behind', async () => {
    const { feed, attach } = setup(() => 0);
    const res = new FakeResponse(0);
    attach(res);
    await settle();
    feed.push(range(1, 100).map(line));
    await settle();
    expect(res.listenerCount('drain')).toBe(1);
    res.emit('close');
    expect(res.listenerCount('drain')).toBe(0);
    expect(res.listenerCount('close')).toBe(0);
    expect(feed.clients.size).toBe(0);
  });
});
