import { MigrationInterface, QueryRunner } from 'typeorm';

export class InitialSchema1763680000000 implements MigrationInterface {
  name = 'InitialSchema1763680000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE jobs (
        id uuid PRIMARY KEY,
        tenant text NOT NULL,
        status text NOT NULL CHECK (status IN
          ('pending','starting','running','completed','failed','timed_out','cancelled','cleaned')),
        image text NOT NULL,
        command jsonb,
        env jsonb NOT NULL DEFAULT '{}',
        secret_names jsonb NOT NULL DEFAULT '[]',
        timeout_seconds integer NOT NULL,
        limits jsonb NOT NULL,
        labels jsonb NOT NULL DEFAULT '{}',
        network boolean NOT NULL DEFAULT false,
        exit_code integer,
        error_code text,
        error_message text,
        runner_id text,
        created_at timestamptz NOT NULL DEFAULT now(),
        started_at timestamptz,
        running_at timestamptz,
        finished_at timestamptz,
        cleaned_at timestamptz,
        updated_at timestamptz NOT NULL DEFAULT now(),
        log_bytes bigint NOT NULL DEFAULT 0,
        log_lines bigint NOT NULL DEFAULT 0,
        log_truncated boolean NOT NULL DEFAULT false,
        log_last_seq bigint NOT NULL DEFAULT 0
      )`);
    await q.query(`CREATE INDEX jobs_tenant_created_idx ON jobs (tenant, created_at DESC, id DESC)`);
    await q.query(`CREATE INDEX jobs_created_idx ON jobs (created_at DESC, id DESC)`);
    await q.query(`CREATE INDEX jobs_status_finished_idx ON jobs (status, finished_at)`);
    await q.query(`CREATE INDEX jobs_labels_idx ON jobs USING gin (labels jsonb_path_ops)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE jobs`);
  }
}
