/** A JSON Schema (2020-12, as OpenAPI 3.1 uses it) or an OpenAPI object built as plain data. */
export type JsonSchema = { [keyword: string]: unknown };

/** A reference to a named component schema. */
export const ref = (name: string): JsonSchema => ({ $ref: `#/components/schemas/${name}` });
