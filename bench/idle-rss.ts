/**
 * `node bench/dist/bench/idle-rss.js [rounds] [quietSeconds]`: each service's idle RSS as the
 * ingest bench's "RSS idle" row measures it (the four built services, one `true` job, a quiet
 * spell), without the ingest that follows there. Each round starts a fresh stack; prints every
 * round's figures and the median per service. For measuring a change quickly; the bench's row
 * is what counts.
 */
import { readFileSync } from 'node:fs';
import { ServiceName, Stack } from '../test/support/stack';
import { TEST_IMAGE, waitFor } from '../test/support/test-env';

const SERVICES: ServiceName[] = ['api', 'runner', 'persister', 'janitor'];
const rounds = Number(process.argv[2] ?? 3);
const quietMs = Number(process.argv[3] ?? 10) * 1000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function rssMb(pid: number | undefined): number {
  if (!pid) return NaN;
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
}

async function round(): Promise<Record<string, number>> {
  const stack = await Stack.start(SERVICES, { LOG_FORMAT: 'json' });
  try {
    const created = await stack.json('POST', '/jobs', { image: TEST_IMAGE, command: ['true'] });
    if (created.status !== 201) throw new Error(`submit: ${JSON.stringify(created.body)}`);
    await waitFor('the job to finish', async () => {
      const { body } = await stack.json('GET', `/jobs/${created.body.id}`);
      return ['completed', 'failed'].includes(body.status) ? body : undefined;
    }, 60000, 20);
    await sleep(quietMs);
    return Object.fromEntries(SERVICES.map((s) => [s, rssMb(stack.pidOf(s))]));
  } finally {
    await stack.stop();
  }
}

async function main(): Promise<void> {
  const all: Record<string, number>[] = [];
  for (let r = 0; r < rounds; r++) {
    const got = await round();
    all.push(got);
    console.log(`round ${r + 1}: ${SERVICES.map((s) => `${s} ${got[s].toFixed(1)}`).join(', ')} MB`);
  }
  console.log(`median: ${SERVICES.map((s) => `${s} ${median(all.map((a) => a[s])).toFixed(1)}`).join(', ')} MB`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
