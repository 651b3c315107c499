import { JobView } from './api.types';

/** `3s`, `5m`, `2h`, `4d`: how long ago, as `docker ps` shows it. */
export function age(fromIso: string, now: number): string {
  const s = Math.max(0, Math.floor((now - Date.parse(fromIso)) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/** A command as a shell would read it back: words with spaces or quotes are quoted. */
export function shellWords(words: readonly string[] | null): string {
  if (!words) return '';
  return words.map((w) => (/^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`)).join(' ');
}

function clip(s: string, max: number): string {
  return s.length <= max ? s : s.slice(0, max - 1) + '…';
}

/** Aligned columns; the last column is not padded. */
export function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n') + '\n';
}

/** `flashpods ls`: one row per job, newest first, as the API ordered them. */
export function jobTable(jobs: readonly JobView[], now: number): string {
  const rows = [['ID', 'STATUS', 'EXIT', 'AGE', 'IMAGE', 'COMMAND']];
  for (const j of jobs) {
    rows.push([j.id, j.status, j.exit_code === null ? '-' : String(j.exit_code), age(j.created_at, now), clip(j.image, 30), clip(shellWords(j.command), 50)]);
  }
  return table(rows);
}

const pairs = (m: Record<string, string>) =>
  Object.entries(m)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');

/** `flashpods get ID`: the job, one field a line. */
export function jobDetail(j: JobView): string {
  const fields: [string, string | null | undefined][] = [
    ['id', j.id],
    ['status', j.status],
    ['exit code', j.exit_code === null ? null : String(j.exit_code)],
    ['error', j.error ? `${j.error.code}: ${j.error.message}` : null],
    ['image', j.image],
    ['command', shellWords(j.command) || null],
    ['labels', pairs(j.labels) || null],
    ['env', Object.keys(j.env).join(' ') || null],
    ['secrets', j.secrets.join(' ') || null],
    ['timeout', `${j.timeout_seconds}s`],
    ['limits', `memory ${j.limits.memory_mb} MB, cpus ${j.limits.cpus}, pids ${j.limits.pids}${j.network ? ', network' : ''}`],
    ['tenant', j.tenant],
    ['runner', j.runner_id],
    ['created', j.created_at],
    ['started', j.started_at],
    ['running', j.running_at],
    ['finished', j.finished_at],
    ['cleaned', j.cleaned_at],
    ['log', `${j.log.lines} lines, ${j.log.bytes} bytes${j.log.truncated ? ', truncated' : ''}${j.log.mode === 'fast' ? ', fast mode' : ''}${j.log.lines_lost ? ', LINES LOST (output not captured while no runner was attached)' : ''}`],
  ];
  return table(fields.filter((f): f is [string, string] => f[1] !== null && f[1] !== undefined).map(([k, v]) => [k, v]));
}
