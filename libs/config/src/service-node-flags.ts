/**
 * The node flags every service but the API runs with. V8's young generation is capped at 2 MB a
 * half (default: up to 16): about 30 MB less resident per service, and no measurable change in
 * ingest (docs/benchmarks.md). Given by scripts/start-local.js and the test stack from here
 * (`serviceNodeFlags`); the compose file and the Dockerfile, which cannot import it, set the same
 * in NODE_OPTIONS (the spec beside this file reads both and holds them to it).
 */
export const SERVICE_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2'];

/**
 * The API's: a young generation of up to 16 MB a half. With 64 requests in flight, 2 MB
 * scavenges promoted their objects, which then filled the old space as garbage. Measured with the
 * bench's readpath step (wrk, loaded machine): with 16, CPU per job and output read 10-30 % less,
 * and RSS after the runs 181 MB instead of 232. A cap: V8 grows new space toward it under load.
 */
export const API_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=16'];

/** The node flags of one service (`api`, `runner`, `persister`, `janitor`). */
export function serviceNodeFlags(service: string): readonly string[] {
  return service === 'api' ? API_NODE_FLAGS : SERVICE_NODE_FLAGS;
}
