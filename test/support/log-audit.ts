import { INDEX_RECORD_BYTES, readIndexRecord } from '@flashpods/log-format';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Stack } from './stack';

const PREFIX = /^\[\d{2}:\d{2}:\d{2}\.\d{3}\] /;

/** What a job's stored log holds, read three ways, and every way they disagree. */
export interface LogAudit {
  /** The `N` of every `line N` in the downloaded log, in file order. */
  numbers: number[];
  /** Every line's text, without its time prefix, in file order. */
  texts: string[];
  /** Lines in the file. */
  lines: number;
  /** Disagreements between the .log, the .idx and `/logs` (empty when consistent). */
  problems: string[];
}

/**
 * Reads a job's log as a user and as the storage: the download, the `.log` and `.idx` files in
 * LOG_DIR (the stack's, unless the test gave its services another), and `/logs` paged to its end. Consistent means: the download is the file; index records
 * hold seq 1..n in order, each pointing at exactly one whole line of the file, back to back, the
 * last ending at the file's end; `/logs` returns the same seqs and texts.
 */
export async function auditLog(stack: Stack, jobId: string, logDir = stack.world.logDir): Promise<LogAudit> {
  const problems: string[] = [];
  const download = Buffer.from(await (await stack.request('GET', `/jobs/${jobId}/logs/download`)).arrayBuffer());
  const file = await readFile(join(logDir, `${jobId}.log`));
  const idx = await readFile(join(logDir, `${jobId}.idx`));
  if (!download.equals(file)) problems.push(`download (${download.length} B) differs from the file (${file.length} B)`);
  if (idx.length % INDEX_RECORD_BYTES !== 0) problems.push(`index size ${idx.length} is not a whole number of records`);
  const count = Math.floor(idx.length / INDEX_RECORD_BYTES);
  let expectedOffset = 0;
  const texts: string[] = [];
  for (let i = 0; i < count; i++) {
    const r = readIndexRecord(idx, i * INDEX_RECORD_BYTES);
    if (r.seq !== i + 1) problems.push(`index record ${i} holds seq ${r.seq}`);
    if (r.offset !== expectedOffset) problems.push(`seq ${r.seq} at offset ${r.offset}, expected ${expectedOffset}`);
    const bytes = file.subarray(r.offset, r.offset + r.length);
    if (bytes.length !== r.length || bytes[bytes.length - 1] !== 0x0a || bytes.subarray(0, -1).includes(0x0a)) {
      problems.push(`seq ${r.seq} does not point at one whole line`);
    }
    texts.push(bytes.subarray(0, -1).toString('utf8').replace(PREFIX, ''));
    expectedOffset = r.offset + r.length;
    if (problems.length > 20) break;
  }
  if (expectedOffset !== file.length) problems.push(`index ends at ${expectedOffset}, the file at ${file.length}`);
  let after = 0;
  const viaApi: { seq: number; line: string }[] = [];
  for (;;) {
    const res = await stack.json('GET', `/jobs/${jobId}/logs?after_seq=${after}&limit=1000`);
    if (res.status !== 200) throw new Error(`/logs answered ${res.status}`);
    viaApi.push(...res.body.logs);
    if (res.body.logs.length === 0 || res.body.next_after_seq === after) break;
    after = res.body.next_after_seq;
  }
  if (viaApi.length !== count) problems.push(`/logs returned ${viaApi.length} lines, the index holds ${count}`);
  for (let i = 0; i < Math.min(viaApi.length, count); i++) {
    if (viaApi[i].seq !== i + 1 || viaApi[i].line !== texts[i]) {
      problems.push(`/logs line ${i} is seq ${viaApi[i].seq} "${viaApi[i].line.slice(0, 40)}", the file has "${texts[i].slice(0, 40)}"`);
      break;
    }
  }
  const numbers = texts.map((t) => /^line (\d+)(?: |$)/.exec(t)).filter((m): m is RegExpExecArray => m !== null).map((m) => Number(m[1]));
  return { numbers, texts, lines: count, problems };
}

/** The job's numbered lines from its stored log; throws when the .log, .idx and `/logs` disagree. */
export async function storedNumbers(stack: Stack, jobId: string, logDir = stack.world.logDir): Promise<number[]> {
  const audit = await auditLog(stack, jobId, logDir);
  if (audit.problems.length) throw new Error(`job ${jobId}: stored log inconsistent: ${audit.problems.slice(0, 5).join('; ')}`);
  return audit.numbers;
}
