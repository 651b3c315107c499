import { MigrationInterface, QueryRunner } from 'typeorm';

export class ApiTokens1763690000000 implements MigrationInterface {
  name = 'ApiTokens1763690000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE api_tokens (
        id uuid PRIMARY KEY,
        tenant text NOT NULL,
        name text NOT NULL,
        token_sha256 bytea NOT NULL UNIQUE,
        created_at timestamptz NOT NULL DEFAULT now(),
        revoked_at timestamptz
      )`);
    await q.query(`CREATE INDEX api_tokens_tenant_idx ON api_tokens (tenant)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE api_tokens`);
  }
}
