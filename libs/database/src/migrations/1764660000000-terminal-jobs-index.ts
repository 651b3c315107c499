import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The janitor's TTL and quota sweeps read terminal jobs oldest first. A partial index on exactly
 * those rows keeps that read an index walk on a table of millions (most rows `cleaned`), and lets
 * the quota sweep sum the disk use of the jobs that still have files without touching the disk.
 */
export class TerminalJobsIndex1764660000000 implements MigrationInterface {
  name = 'TerminalJobsIndex1764660000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE INDEX jobs_terminal_finished_idx ON jobs (finished_at, id)
      INCLUDE (log_bytes, log_lines)
      WHERE status IN ('completed', 'failed', 'timed_out', 'cancelled')`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX jobs_terminal_finished_idx`);
  }
}
