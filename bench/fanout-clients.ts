/**
 * The SSE clients of `npm run bench -- --only=fanout`, in a process of their own: each reads its
 * job's live tail to `end`, checks every line arrives once and in order, and notes the latency of
 * each `tick` line (capture time on the runner → arrival here). Prints one JSON report.
 *
 * Environment: FANOUT_BASE_URL, FANOUT_TOKEN (kept out of argv), FANOUT_TARGETS (JSON
 * `[{ id, clients }]`).
 */
import { request } from 'node:http';

interface ClientState {
  jobId: string;
  lines: number;
  lastSeq: number;
  disorder: number;
  ended: boolean;
  error: string;
}

/** Latencies of every tick, in one growing typed array: a million samples cost 8 MB, not 30. */
let samples = new Float64Array(1 << 20);
let sampleCount = 0;
function sample(ms: number): void {
  if (sampleCount === samples.length) {
    const bigger = new Float64Array(samples.length * 2);
    bigger.set(samples);
    samples = bigger;
  }
  samples[sampleCount++] = ms;
}

function client(baseUrl: string, token: string, jobId: string): Promise<ClientState> {
  const state: ClientState = { jobId, lines: 0, lastSeq: 0, disorder: 0, ended: false, error: '' };
  return new Promise((resolve) => {
    const req = request(`${baseUrl}/jobs/${jobId}/logs/stream`, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) {
        state.error = `HTTP ${res.statusCode}`;
        res.resume();
        return resolve(state);
      }
      res.setEncoding('utf8');
      let buf = '';
      res.on('data', (d: string) => {
        buf += d;
        let at: number;
        while ((at = buf.indexOf('\n\n')) !== -1) {
          const block = buf.slice(0, at);
          buf = buf.slice(at + 2);
          if (block.startsWith('id: ') && block.includes('\nevent: line\n')) {
            const seq = Number(block.slice(4, block.indexOf('\n')));
            if (seq !== state.lastSeq + 1) state.disorder++;
            state.lastSeq = seq;
            state.lines++;
            // Only the ticks: the system lines before them (image, container started) predate the client.
            if (block.includes('"line":"tick ')) {
              const ts = block.indexOf('"ts":"');
              sample(Date.now() - Date.parse(block.slice(ts + 6, ts + 30)));
            }
          } else if (block.includes('event: end')) {
            state.ended = true;
            req.destroy();
            resolve(state);
          }
        }
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
  const states = await Promise.all(targets.flatMap((t) => Array.from({ length: t.clients }, () => client(baseUrl, token, t.id))));
  const sorted = samples.subarray(0, sampleCount).sort();
  const at = (p: number) => sorted[Math.min(sampleCount - 1, Math.floor(sampleCount * p))] ?? NaN;
  const report = {
    clients: states.map(({ jobId, lines, disorder, ended, error }) => ({ jobId, lines, disorder, ended, error })),
    samples: sampleCount,
    p50: at(0.5),
    p99: at(0.99),
    max: sampleCount ? sorted[sampleCount - 1] : NaN,
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
