import { createServiceRegistry } from '@flashpods/config';
import { Counter, Gauge } from 'prom-client';
import type { LogFileState } from './log-file.writer';

/**
 * Every metric of the persister, in one place; the consumer only calls the one-line recorders of
 * `persisterMetrics`. Served on METRICS_PORT by persister-metrics.endpoint.ts, which also reads
 * the gauges that need Redis at scrape time.
 */
export const persisterRegistry = createServiceRegistry('persister');
const registers = [persisterRegistry];

const writtenLines = new Counter({
  name: 'flashpods_persister_written_lines_total',
  help: 'Lines written to log files (system lines and truncation markers included; a line already stored is not written again)',
  registers,
});
const writtenBytes = new Counter({
  name: 'flashpods_persister_written_bytes_total',
  help: 'Bytes written to log files (time prefix and newline included), the figure of a job log.bytes',
  registers,
});
const writtenChunks = new Counter({
  name: 'flashpods_persister_written_chunks_total',
  help: 'Chunks of lines read from job streams and applied to log files',
  registers,
});
const writeRetries = new Counter({
  name: 'flashpods_persister_write_retries_total',
  help: 'Log writes that failed (ENOSPC, EIO) and were tried again',
  registers,
});
const jobsTaken = new Counter({
  name: 'flashpods_persister_jobs_taken_total',
  help: 'Jobs this persister took ownership of (new, or claimed from a persister that stopped)',
  registers,
});
const jobsDropped = new Counter({
  name: 'flashpods_persister_jobs_dropped_total',
  help: 'Jobs this persister stopped writing because their lease was no longer surely its own',
  registers,
});
/** What the gauges read at scrape time; set by the endpoint, which knows the consumer and Redis. */
export interface PersisterGaugeSource {
  ownedJobs(): number;
  lagEntries(): Promise<number>;
  unclaimedJobs(): Promise<number>;
}
let source: PersisterGaugeSource | undefined;
export function readGaugesFrom(s: PersisterGaugeSource): void {
  source = s;
}

new Gauge({
  name: 'flashpods_persister_jobs_owned',
  help: 'Jobs this persister owns now',
  registers,
  collect() {
    if (source) this.set(source.ownedJobs());
  },
});
new Gauge({
  name: 'flashpods_persister_lag_entries',
  help: 'Entries waiting in the streams of the jobs this persister owns (the one entry each stream keeps as its position not counted)',
  registers,
  // Redis unreachable: the last value stays, and the scrape still answers.
  async collect() {
    if (source) this.set(await source.lagEntries().catch(() => Number.NaN));
  },
});
new Gauge({
  name: 'flashpods_persister_unclaimed_jobs',
  help: 'Job announcements on the active stream not yet read by any persister (consumer group lag; the same figure on every persister)',
  registers,
  async collect() {
    if (source) this.set(await source.unclaimedJobs().catch(() => Number.NaN));
  },
});

export const persisterMetrics = {
  /** A write to the log file succeeded: `before` and `after` are the writer's state around it. */
  /**
   * `records`: lines the write stored. Bytes from the state's growth, which only a head_tail log's
   * tail rotation (old segments deleted) can shrink: such a write counts no bytes rather than fail.
   */
  written(chunks: number, records: number, before: Readonly<LogFileState>, after: Readonly<LogFileState>): void {
    writtenChunks.inc(chunks);
    writtenLines.inc(records);
    writtenBytes.inc(Math.max(0, after.bytes - before.bytes));
  },
  writeRetried: () => writeRetries.inc(),
  taken: () => jobsTaken.inc(),
  dropped: () => jobsDropped.inc(),
};
