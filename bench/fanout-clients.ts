/**
 * The SSE clients of `npm run bench -- --only=fanout`, in a process of their own: each reads its
 * job's live tail to `end`, checks every line arrives once and in order, and notes the latency of
 * each `tick` line (capture time on the runner → arrival here). Prints one JSON report, with the
 * latencies of the first target's clients (the many on one job) and of the others apart.
 *
 * It has to be cheap: on the bench's two cores its parsing competes with the API it measures. So
 * it reads bytes, not strings: it finds each event's `id:` and takes the capture time of a tick
 * from the fixed place it has in the event (`"ts":"…"` right after the seq), without JSON.parse.
 *
 * Environment: FANOUT_BASE_URL, FANOUT_TOKEN (kept out of argv), FANOUT_TARGETS (JSON
 * `[{ id, clients }]`).
 */
import { request } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';

interface ClientState {
  jobId: string;
  lines: number;
  lastSeq: number;
  disorder: number;
  ended: boolean;
  error: string;
}

/** Latencies in one growing typed array: a million samples cost 8 MB, not 30. */
class Samples {
  private data = new Float64Array(1 << 16);
  count = 0;
  add(ms: number): void {
    if (this.count === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.count++] = ms;
  }
  summary(): { samples: number; p50: number; p99: number; max: number } {
    const sorted = this.data.subarray(0, this.count).sort();
    const at = (p: number) => sorted[Math.min(this.count - 1, Math.floor(this.count * p))] ?? NaN;
    return { samples: this.count, p50: at(0.5), p99: at(0.99), max: this.count ? sorted[this.count - 1] : NaN };
  }
}

const EVENT_END = Buffer.from('\n\n');
const LINE_EVENT = Buffer.from('\nevent: line\n');
const END_EVENT = Buffer.from('event: end\n');
const TICK = Buffer.from('"line":"tick ');
const TS = Buffer.from('"ts":"');

function client(baseUrl: string, token: string, jobId: string, samples: Samples): Promise<ClientState> {
  const state: ClientState = { jobId, lines: 0, lastSeq: 0, disorder: 0, ended: false, error: '' };
  return new Promise((resolve) => {
    const req = request(`${baseUrl}/jobs/${jobId}/logs/stream`, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) {
        state.error = `HTTP ${res.statusCode}`;
        res.resume();
        return resolve(state);
      }
      let carry: Buffer | undefined;
      res.on('data', (d: Buffer) => {
        const now = Date.now();
        const buf = carry ? Buffer.concat([carry, d]) : d;
        let from = 0;
        let at: number;
        for (; (at = buf.indexOf(EVENT_END, from)) !== -1; from = at + 2) {
          // An event: `id: N\nevent: line\ndata: {...}` or another kind (`event: status`, `end`, a ping).
          if (buf[from] === 0x69 /* i */ && buf.indexOf(LINE_EVENT, from) === buf.indexOf(0x0a, from)) {
            let seq = 0;
            for (let i = from + 4; buf[i] !== 0x0a; i++) seq = seq * 10 + buf[i] - 0x30;
            if (seq !== state.lastSeq + 1) state.disorder++;
            state.lastSeq = seq;
            state.lines++;
            // Only the ticks: the system lines before them (image, container started) predate the client.
            const tick = buf.indexOf(TICK, from);
            if (tick !== -1 && tick < at) {
              const ts = buf.indexOf(TS, from) + TS.length;
              samples.add(now - Date.parse(buf.toString('latin1', ts, ts + 24)));
            }
          } else if (buf.indexOf(END_EVENT, from) !== -1 && buf.indexOf(END_EVENT, from) < at) {
            state.ended = true;
            req.destroy();
            resolve(state);
          }
        }
        carry = from < buf.length ? buf.subarray(from) : undefined;
      });
      res.on('close', () => resolve(state));
    });
    req.on('error', (err) => {
      state.error ||= err.message;
      resolve(state);
    });
    req.end();
  });
}

async function main(): Promise<void> {
  const baseUrl = process.env.FANOUT_BASE_URL!;
  const token = process.env.FANOUT_TOKEN!;
  const targets = JSON.parse(process.env.FANOUT_TARGETS!) as { id: string; clients: number }[];
  // How late this process's own event loop ran: a line that arrived while the loop was busy is
  // counted late by that much, although the API wrote it in time.
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const all = new Samples();
  const many = new Samples();
  const others = new Samples();
  const both = { add: (ms: number) => (all.add(ms), many.add(ms)) } as Samples;
  const rest = { add: (ms: number) => (all.add(ms), others.add(ms)) } as Samples;
  const states = await Promise.all(
    targets.flatMap((t, i) => Array.from({ length: t.clients }, () => client(baseUrl, token, t.id, i === 0 ? both : rest))),
  );
  const usage = process.cpuUsage();
  const report = {
    clients: states.map(({ jobId, lines, disorder, ended, error }) => ({ jobId, lines, disorder, ended, error })),
    ...all.summary(),
    first: many.summary(),
    others: others.summary(),
    cpuSeconds: Math.round((usage.user + usage.system) / 1e5) / 10,
    loopDelayMs: { p50: Math.round(loop.percentile(50) / 1e6), p99: Math.round(loop.percentile(99) / 1e6), max: Math.round(loop.max / 1e6) },
  };
  process.stdout.write(JSON.stringify(report) + '\n');
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
