import { DataSource } from 'typeorm';
import { PostgresDriver } from 'typeorm/driver/postgres/PostgresDriver';

/** The part of node-postgres' pool the read path uses. */
export interface PgPool {
  query<R>(config: { name: string; text: string; values: unknown[] }): Promise<{ rows: R[]; rowCount: number | null }>;
}

/**
 * The pool under the DataSource, for the hot reads of the request path: one named (prepared)
 * statement per query, without TypeORM's query runner, query builder and entity hydration
 * around it, which cost more than the query itself under load. Same connections, same limits.
 */
export function pgPool(ds: DataSource): PgPool {
  if (!(ds.driver instanceof PostgresDriver)) throw new Error('the read path needs the Postgres driver');
  return ds.driver.master as PgPool;
}
