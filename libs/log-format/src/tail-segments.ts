import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Files of a running `head_tail` job past the head (see the persister's `tail-segments.ts`): the
 * directory `{job_id}.tail/` beside `{job_id}.log`, holding `head` (where the head ended) and
 * segments `{first_seq}.log` + `{first_seq}.idx` in the format of the job's own files (absolute
 * seqs, offsets within the segment). Once the job's end is composed into `{job_id}.log`, `head`
 * is removed first (the commit point), then the directory.
 */
export function tailDirName(jobId: string): string {
  return `${jobId}.tail`;
}

export const TAIL_HEAD_FILE = 'head';

export function segmentFileNames(firstSeq: number): { log: string; index: string } {
  return { log: `${firstSeq}.log`, index: `${firstSeq}.idx` };
}

const SEGMENT_FILE = /^(\d+)\.(log|idx)$/;

/** Where the head of a `head_tail` log ended: the lines that go before the marker. */
export interface TailHead {
  /** Records and bytes of `{job_id}.idx` / `.log` that are the head. */
  lines: number;
  bytes: number;
  /** Seq of the last line of the head. */
  lastSeq: number;
  /** Timestamp of the first line past the head: the marker's, if one is needed. */
  firstTs: number;
}

export function encodeTailHead(h: TailHead): string {
  return JSON.stringify(h);
}

export function parseTailHead(text: string): TailHead | undefined {
  try {
    const v = JSON.parse(text) as Partial<TailHead>;
    const ok = [v.lines, v.bytes, v.lastSeq, v.firstTs].every((n) => typeof n === 'number' && Number.isFinite(n) && n >= 0);
    return ok ? (v as TailHead) : undefined;
  } catch {
    return undefined;
  }
}

export interface SegmentFiles {
  firstSeq: number;
  /** Absolute paths. */
  log: string;
  index: string;
}

/**
 * The head and the segments (oldest first) of a `head_tail` job in its tail phase; undefined when
 * there is none (a `head` job, a log that never passed the head, one already composed).
 * `segments` lists those whose two files are both there; `strays` the other files in the
 * directory (a segment whose creation or deletion was cut short, a temporary file).
 */
export async function listTailSegments(
  tailDir: string,
): Promise<{ head: TailHead; segments: SegmentFiles[]; strays: string[] } | undefined> {
  const text = await readFile(join(tailDir, TAIL_HEAD_FILE), 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return undefined;
    throw err;
  });
  const head = text === undefined ? undefined : parseTailHead(text);
  if (!head) return undefined;
  const names = await readdir(tailDir).catch(() => [] as string[]);
  const parts = new Map<number, Set<string>>();
  const strays: string[] = [];
  for (const name of names) {
    const m = SEGMENT_FILE.exec(name);
    if (!m) {
      if (name !== TAIL_HEAD_FILE) strays.push(join(tailDir, name));
      continue;
    }
    const seq = Number(m[1]);
    parts.set(seq, (parts.get(seq) ?? new Set()).add(m[2]));
  }
  const segments: SegmentFiles[] = [];
  for (const [firstSeq, kinds] of [...parts].sort((a, b) => a[0] - b[0])) {
    const names = segmentFileNames(firstSeq);
    if (kinds.size === 2) segments.push({ firstSeq, log: join(tailDir, names.log), index: join(tailDir, names.index) });
    else strays.push(join(tailDir, kinds.has('log') ? names.log : names.index));
  }
  return { head, segments, strays };
}
