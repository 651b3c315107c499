import { appendFileSync } from 'node:fs';

export interface ChaosRow {
  scenario: string;
  expected: number;
  found: number;
  /** Lines (or runs) seen more than once; null for a row that counts something else (jobs, containers). */
  duplicates: number | null;
  result: 'pass' | 'FAIL';
  note?: string;
}

/** Appends a row to the chaos report when `npm run chaos` asked for one (CHAOS_REPORT). */
export function recordChaos(row: ChaosRow): void {
  const file = process.env.CHAOS_REPORT;
  if (file) appendFileSync(file, JSON.stringify(row) + '\n');
}

/** Counts a job's numbered lines against 1..n and records the scenario. Returns the row. */
export function tally(scenario: string, lines: number[], n: number, note?: string): ChaosRow {
  const unique = new Set(lines);
  const inRange = [...unique].filter((v) => v >= 1 && v <= n).length;
  const ordered = lines.every((v, i) => i === 0 || v > lines[i - 1]);
  const row: ChaosRow = {
    scenario,
    expected: n,
    found: inRange,
    duplicates: lines.length - unique.size,
    result: inRange === n && lines.length === n && ordered ? 'pass' : 'FAIL',
    note,
  };
  recordChaos(row);
  return row;
}
