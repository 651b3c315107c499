import { MigrationInterface, QueryRunner } from 'typeorm';

/** `log_keep` per job: `head` (the seed's rule, and every existing job) or `head_tail`. */
export class LogKeep1763750000000 implements MigrationInterface {
  name = 'LogKeep1763750000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE jobs ADD COLUMN log_keep text NOT NULL DEFAULT 'head' CHECK (log_keep IN ('head','head_tail'))`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE jobs DROP COLUMN log_keep`);
  }
}
