import { loadConfig } from '@flashpods/config';
import { OpenApiContract } from '../../../../test/support/openapi-contract';
import { componentSchemas } from '../openapi/openapi.schemas';
import { createJobSchema } from './create-job.schema';

/**
 * The zod schema validates `POST /jobs`; the OpenAPI document publishes `CreateJobRequest`. Both
 * must accept and refuse the same bodies, at every bound, or a generated client and the API
 * disagree about what a valid job is.
 */
describe('CreateJobRequest (OpenAPI) and createJobSchema (zod) agree', () => {
  const config = loadConfig({ JOB_MAX_ENV_ENTRIES: '3', JOB_MAX_LABELS: '2' });
  const zod = createJobSchema(config);
  const doc = new OpenApiContract({ openapi: '3.1.0', components: { schemas: componentSchemas(config) } });
  const published = (body: unknown) => {
    try {
      doc.assertSchema('CreateJobRequest', body);
      return true;
    } catch {
      return false;
    }
  };
  const j = config.jobs;
  const image = 'busybox:latest';
  const map = (n: number, value = 'value') => Object.fromEntries(Array.from({ length: n }, (_, i) => [`K${i}`, value]));

  const bodies: [string, unknown][] = [
    ['minimal', { image }],
    ['everything', { image, command: ['sh', '-c', 'echo'], env: { A: '1' }, secrets: { S: 'abcd' }, labels: { 'team/x': 'a' }, timeout_seconds: 5, limits: { memory_mb: 64, cpus: 0.5, pids: 10 }, network: false }],
    ['no image', {}],
    ['empty image', { image: '' }],
    ['image of 512', { image: 'a'.repeat(512) }],
    ['image of 513', { image: 'a'.repeat(513) }],
    ['image with a space', { image: 'busy box' }],
    ['image starting with -', { image: '-x' }],
    ['image with digest', { image: 'registry.example:5000/a/b@sha256:abc' }],
    ['image not a string', { image: 1 }],
    ['unknown field', { image, extra: 1 }],
    ['empty command', { image, command: [] }],
    ['command of 1024', { image, command: Array(1024).fill('x') }],
    ['command of 1025', { image, command: Array(1025).fill('x') }],
    ['command arg of 64 KiB', { image, command: ['x'.repeat(64 * 1024)] }],
    ['command arg over 64 KiB', { image, command: ['x'.repeat(64 * 1024 + 1)] }],
    ['command not strings', { image, command: [1] }],
    ['command null', { image, command: null }],
    ['env at the limit', { image, env: map(j.maxEnvEntries) }],
    ['env over the limit', { image, env: map(j.maxEnvEntries + 1) }],
    ['env bad name', { image, env: { '1A': 'x' } }],
    ['env name with dash', { image, env: { 'A-B': 'x' } }],
    ['env name of 128', { image, env: { ['A'.repeat(128)]: 'x' } }],
    ['env name of 129', { image, env: { ['A'.repeat(129)]: 'x' } }],
    ['env value of 32 KiB', { image, env: { A: 'x'.repeat(32 * 1024) } }],
    ['env value over 32 KiB', { image, env: { A: 'x'.repeat(32 * 1024 + 1) } }],
    ['env value a number', { image, env: { A: 1 } }],
    ['env an array', { image, env: ['A'] }],
    ['secret of 4', { image, secrets: { S: 'abcd' } }],
    ['secret of 3', { image, secrets: { S: 'abc' } }],
    ['secrets over the limit', { image, secrets: map(j.maxEnvEntries + 1) }],
    ['labels at the limit', { image, labels: map(j.maxLabels) }],
    ['labels over the limit', { image, labels: map(j.maxLabels + 1) }],
    ['label key with dots and slashes', { image, labels: { 'a.b/c_d-e': 'x' } }],
    ['label key starting with _', { image, labels: { _a: 'x' } }],
    ['label value of 256', { image, labels: { a: 'x'.repeat(256) } }],
    ['label value of 257', { image, labels: { a: 'x'.repeat(257) } }],
    ['timeout 0', { image, timeout_seconds: 0 }],
    ['timeout 1', { image, timeout_seconds: 1 }],
    ['timeout at the max', { image, timeout_seconds: j.timeoutMaxSeconds }],
    ['timeout over the max', { image, timeout_seconds: j.timeoutMaxSeconds + 1 }],
    ['timeout fractional', { image, timeout_seconds: 1.5 }],
    ['timeout a string', { image, timeout_seconds: '5' }],
    ['memory 5', { image, limits: { memory_mb: 5 } }],
    ['memory 6', { image, limits: { memory_mb: 6 } }],
    ['memory at the max', { image, limits: { memory_mb: j.memoryMbMax } }],
    ['memory over the max', { image, limits: { memory_mb: j.memoryMbMax + 1 } }],
    ['cpus 0', { image, limits: { cpus: 0 } }],
    ['cpus 0.01', { image, limits: { cpus: 0.01 } }],
    ['cpus at the max', { image, limits: { cpus: j.cpusMax } }],
    ['cpus over the max', { image, limits: { cpus: j.cpusMax + 0.5 } }],
    ['pids 0', { image, limits: { pids: 0 } }],
    ['pids at the max', { image, limits: { pids: j.pidsMax } }],
    ['pids over the max', { image, limits: { pids: j.pidsMax + 1 } }],
    ['limits unknown field', { image, limits: { disk: 1 } }],
    ['limits null', { image, limits: null }],
    ['network false', { image, network: false }],
    ['network a string', { image, network: 'yes' }],
  ];

  it.each(bodies)('%s', (_what, body) => {
    expect(published(body)).toBe(zod.safeParse(body).success);
  });

  // The two rules that need the whole body are only described in the document: they are the
  // one place where a published-valid body is refused.
  it.each<[string, unknown]>([
    ['a secret also in env', { image, env: { S: 'x' }, secrets: { S: 'abcd' } }],
    ['network: true where not allowed', { image, network: true }],
  ])('refused by zod only, as the document describes: %s', (_what, body) => {
    expect([published(body), zod.safeParse(body).success]).toEqual([true, false]);
  });
});
