import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * `log_mode`: how the runner that took the job captured its output (`durable` or `fast`, see
 * LogMode); null until a runner takes it, which sets it. Jobs from before this migration ran
 * durable: they get that value (a constant default, so no table rewrite; a job still pending then
 * is set again by the runner that takes it). New rows start null.
 * `log_lines_lost`: the log has a gap where output was not captured (fast mode only).
 */
export class LogMode1764760000000 implements MigrationInterface {
  name = 'LogMode1764760000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE jobs ADD COLUMN log_mode text DEFAULT 'durable' CHECK (log_mode IN ('durable','fast'))`);
    await q.query(`ALTER TABLE jobs ALTER COLUMN log_mode DROP DEFAULT`);
    await q.query(`ALTER TABLE jobs ADD COLUMN log_lines_lost boolean NOT NULL DEFAULT false`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE jobs DROP COLUMN log_lines_lost`);
    await q.query(`ALTER TABLE jobs DROP COLUMN log_mode`);
  }
}
