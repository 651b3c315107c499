import { loadConfig } from '@flashpods/config';
import { JobErrorCode, JobStatus, LogLevel, LogStream } from '@flashpods/contracts';
import Ajv2020 from 'ajv/dist/2020';
import { ZodTypeAny } from 'zod';
import { JobFactory } from '../../../../test/support/job.factory';
import { OpenApiContract } from '../../../../test/support/openapi-contract';
import { API_ERROR_CODES } from '../common/api-error-code';
import { jobView } from '../jobs/job.view';
import { LIST_QUERY, listSchema } from '../jobs/jobs.controller';
import { logEntryView } from '../logs/log-entry.view';
import { LOGS_QUERY, logsQuerySchema, MATCHES_QUERY, matchesQuerySchema, TAIL_QUERY } from '../logs/job-logs.controller';
import { QueryParam } from './api-docs.decorators';
import { componentSchemas } from './openapi.schemas';

const config = loadConfig({});
const schemas = componentSchemas(config);
const doc = new OpenApiContract({ openapi: '3.1.0', components: { schemas } });

describe('the views match the schemas the document publishes for them', () => {
  it('Job: a job in every status, with and without an error', () => {
    const at = new Date('2026-01-01T00:00:00Z');
    for (const status of Object.values(JobStatus)) {
      doc.assertSchema('Job', jobView(JobFactory.build({ status })), status);
    }
    doc.assertSchema(
      'Job',
      jobView(
        JobFactory.build({
          status: JobStatus.Failed,
          command: null,
          exitCode: 3,
          errorCode: JobErrorCode.NonzeroExit,
          errorMessage: 'exited with code 3',
          runnerId: 'runner-1',
          startedAt: at,
          runningAt: at,
          finishedAt: at,
          cleanedAt: at,
          logBytes: 10,
          logLines: 1,
          logTruncated: true,
          labels: { a: 'b' },
          env: { A: '1' },
          secretNames: ['S'],
        }),
      ),
    );
  });

  it('LogLine: every stream and level', () => {
    for (const stream of [LogStream.Stdout, LogStream.Stderr, LogStream.System]) {
      for (const level of [LogLevel.Debug, LogLevel.Info, LogLevel.Warn, LogLevel.Error, LogLevel.Fatal]) {
        doc.assertSchema('LogLine', logEntryView(1, Date.now(), stream, level, 'text'));
      }
    }
  });

  it('refuses what the views never send', () => {
    const job = jobView(JobFactory.build());
    expect(() => doc.assertSchema('Job', { ...job, status: 'lost' })).toThrow(/status/);
    expect(() => doc.assertSchema('Job', { ...job, extra: 1 })).toThrow(/additional/);
    expect(() => doc.assertSchema('Error', { error: 'nope', message: 'x' })).toThrow(/allowed values/);
  });

  it('Error lists every code the API uses', () => {
    expect((schemas.Error.properties as { error: { enum: string[] } }).error.enum).toEqual([...API_ERROR_CODES]);
  });
});

/**
 * The query parameters the document publishes and the zod schemas that parse them: the same names,
 * and the same verdict on each value (as the strings a URL carries).
 */
describe('published query parameters match their validation', () => {
  const ajv = new Ajv2020({ strict: false, coerceTypes: true });
  ajv.addSchema({ $id: 'https://flashpods.invalid/openapi.json', components: { schemas } });
  const publishedOk = (params: readonly QueryParam[], name: string, value: string) => {
    const param = params.find((p) => p.name === name);
    if (!param) throw new Error(`no published parameter ${name}`);
    const schema = JSON.parse(JSON.stringify(param.schema).replace(/"#\/components/g, '"https://flashpods.invalid/openapi.json#/components'));
    return ajv.validate({ type: 'object', properties: { v: schema } }, { v: value });
  };
  const shapeOf = (schema: ZodTypeAny) => Object.keys((schema as unknown as { shape: object }).shape).sort();

  it('GET /jobs and GET /jobs/{id}/logs publish exactly the parameters they accept', () => {
    expect(LIST_QUERY.map((p) => p.name).sort()).toEqual(shapeOf(listSchema));
    expect(LOGS_QUERY.map((p) => p.name).sort()).toEqual(shapeOf(logsQuerySchema));
    expect(MATCHES_QUERY.map((p) => p.name).sort()).toEqual(shapeOf(matchesQuerySchema));
  });

  it.each<[string, string[]]>([
    ['limit', ['0', '1', '50', '200', '201', '1.5', 'x', '-1']],
    ['status', ['pending', 'cleaned', 'lost', '']],
    ['label', ['a=b', 'a=', '=b', 'ab', 'a=b=c']],
    ['cursor', ['x'.repeat(200), 'x'.repeat(201)]],
  ])('GET /jobs %s', (name, values) => {
    for (const v of values) {
      const zodOk = listSchema.safeParse({ [name]: v }).success;
      // A cursor is also checked for being one this API wrote; only its length is published.
      if (name === 'cursor' && !zodOk && publishedOk(LIST_QUERY, name, v)) continue;
      expect([name, v, publishedOk(LIST_QUERY, name, v)]).toEqual([name, v, zodOk]);
    }
  });

  it.each<[string, string[]]>([
    ['after_seq', ['0', '5', '-1', '1.5', 'x', String(Number.MAX_SAFE_INTEGER), '9007199254740992']],
    ['limit', ['0', '1', '1000', '1001']],
    ['stream', ['stdout', 'stderr', 'system', 'stdin', '', 'stdout,stderr', ' stdout , system ', 'stdout,x', ',']],
    ['level', ['info', 'warn,error', ' warn , error ', 'debug,info,warn,error,fatal', 'x', 'error,x', ',', '']],
    ['q', ['x', '', 'x'.repeat(1000), 'x'.repeat(1001)]],
  ])('GET /jobs/{id}/logs %s', (name, values) => {
    for (const v of values) {
      expect([name, v, publishedOk(LOGS_QUERY, name, v)]).toEqual([name, v, logsQuerySchema.safeParse({ [name]: v }).success]);
    }
  });

  it.each<[string, string[]]>([
    ['limit', ['0', '1', '10000', '100000', '100001']],
    ['stream', ['stdout', 'stdout,stderr', 'stdin', '']],
    ['after_seq', ['0', '-1', 'x']],
  ])('GET /jobs/{id}/logs/matches %s', (name, values) => {
    for (const v of values) {
      expect([name, v, publishedOk(MATCHES_QUERY, name, v)]).toEqual([name, v, matchesQuerySchema.safeParse({ [name]: v }).success]);
    }
  });

  it('GET /jobs/{id}/output tail is 1..10000', () => {
    expect(['0', '1', '10000', '10001', 'x'].map((v) => publishedOk(TAIL_QUERY, 'tail', v))).toEqual([false, true, true, false, false]);
  });
});
