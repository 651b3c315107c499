/** A UUID as Postgres's `uuid` type reads it: anything looser reaches the database and fails there. */
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
