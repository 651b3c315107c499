/**
 * The node flags every service runs with. V8's young generation is capped at 2 MB a half
 * (default: up to 16): about 30 MB less resident per service, and no measurable change in ingest
 * (docs/benchmarks.md). Given by scripts/start-local.js and the test stack from here; the
 * compose file and the Dockerfile, which cannot import it, set the same in NODE_OPTIONS (the spec
 * beside this file reads both and holds them to it).
 */
export const SERVICE_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2'];
