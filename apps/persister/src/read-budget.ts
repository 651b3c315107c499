/**
 * Entries one tail read may return across all of a persister's job streams. With each entry at
 * most one runner chunk (`STREAM_CHUNK_MAX_BYTES`, 64 KiB by default), one read holds at most
 * 64 × 64 KiB = 4 MiB however many jobs the persister owns (the reply is copied once more as it
 * is parsed). 256 held the persister's peak above 150 MB under the ingest flood; 64 still reads
 * 4 MiB a round when it is behind.
 */
export const READ_BUDGET_ENTRIES = 64;

export interface ReadPlan<T> {
  /** The streams to read this time. */
  jobs: T[];
  /** XREAD COUNT: entries per stream. `jobs.length × count` never exceeds the budget. */
  count: number;
  /** Where the next plan starts when not every stream fits in one read. */
  next: number;
}

/**
 * Splits the budget over the streams: `floor(budget / streams)` entries each, at least one; with
 * more streams than the budget, one entry from each of `budget` streams, taken round-robin from
 * `start` so every stream is read within `ceil(streams / budget)` reads.
 */
export function planRead<T>(jobs: readonly T[], start: number, budget = READ_BUDGET_ENTRIES): ReadPlan<T> {
  if (jobs.length <= budget) return { jobs: [...jobs], count: Math.max(1, Math.floor(budget / Math.max(1, jobs.length))), next: 0 };
  const from = start % jobs.length;
  const picked = [...jobs.slice(from, from + budget), ...jobs.slice(0, Math.max(0, from + budget - jobs.length))];
  return { jobs: picked, count: 1, next: (from + budget) % jobs.length };
}
