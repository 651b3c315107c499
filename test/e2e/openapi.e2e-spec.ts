import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as ts from 'typescript';
import { ContractViolation } from '../support/openapi-contract';
import { Stack } from '../support/stack';
import { TEST_IMAGE } from '../support/test-env';

const ROOT = join(__dirname, '..', '..');
const BIN = join(ROOT, 'node_modules', '.bin');
const FLOW = join(ROOT, 'test', 'openapi-client', 'client-flow.ts');

/** What `clientFlow` takes (test/openapi-client/client-flow.ts). */
interface FlowOptions {
  baseUrl: string;
  adminToken: string;
  image: string;
  fetch: (input: Request) => Promise<Response>;
}

/** Runs a tool of node_modules/.bin offline and without telemetry; returns its exit code and output. */
function run(tool: string, args: string[], cwd: string): { status: number | null; output: string } {
  const r = spawnSync(join(BIN, tool), args, {
    cwd,
    encoding: 'utf8',
    timeout: 90_000,
    env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' },
  });
  return { status: r.status, output: `${r.stdout}${r.stderr}${r.error ? String(r.error) : ''}` };
}

/** Casts, non-null assertions, `any` and `@ts-` comments in a source file: what "no casts" rules out. */
function escapes(file: string, text: string): string[] {
  const found: string[] = [];
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true);
  const visit = (node: ts.Node) => {
    if (ts.isAsExpression(node) || ts.isTypeAssertionExpression(node) || ts.isNonNullExpression(node) || node.kind === ts.SyntaxKind.AnyKeyword) {
      found.push(`${source.getLineAndCharacterOfPosition(node.getStart()).line + 1}: ${node.getText()}`);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  if (/@ts-(ignore|expect-error|nocheck)/.test(text)) found.push('a @ts- comment');
  return found;
}

describe('the OpenAPI document at /docs-json is the contract', () => {
  let stack: Stack;
  let dir: string;
  let docPath: string;
  beforeAll(async () => {
    stack = await Stack.start(['api', 'runner', 'persister']);
    dir = await mkdtemp(join(tmpdir(), 'fp-openapi-'));
    docPath = join(dir, 'openapi.json');
    const res = await stack.request('GET', '/docs-json');
    expect(res.status).toBe(200);
    await writeFile(docPath, await res.text());
  }, 60000);
  afterAll(async () => {
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('passes redocly lint (recommended rules) with zero errors', () => {
    const { status, output } = run('redocly', ['lint', docPath, '--format=stylish'], dir);
    console.log(output.replace(/^.*[║╔╚].*\n/gm, ''));
    expect([status, /Your API description is valid/.test(output)]).toEqual([0, true]);
  });

  it('documents every method the API routes on each of its paths, each with a summary, an operationId and its errors', async () => {
    const doc = stack.contract!.doc;
    const ids = new Set<string>();
    for (const [template, operations] of Object.entries(doc.paths ?? {})) {
      // The API's own router says which methods a path answers (405 + Allow for one it does not).
      const path = template.replace('{id}', '00000000-0000-4000-8000-000000000000');
      const res = await fetch(`${stack.baseUrl}${path}`, { method: 'PATCH' });
      expect([template, res.status]).toEqual([template, 405]);
      const routed = res.headers.get('allow')!.split(', ').filter((m) => m !== 'HEAD').map((m) => m.toLowerCase()).sort();
      expect([template, Object.keys(operations).sort()]).toEqual([template, routed]);
      for (const [method, op] of Object.entries(operations)) {
        const o = op as { operationId?: string; summary?: string; security?: unknown[] };
        expect([template, method, typeof o.summary, typeof o.operationId]).toEqual([template, method, 'string', 'string']);
        ids.add(o.operationId!);
        const statuses = Object.keys(op.responses);
        // Every call that needs a token says so, and what a refused one looks like.
        if (o.security?.length) expect([template, method, statuses]).toEqual([template, method, expect.arrayContaining(['401', '429', '503'])]);
      }
    }
    expect(ids.size).toBe(Object.values(doc.paths ?? {}).reduce((n, ops) => n + Object.keys(ops).length, 0));
    const schemes = (doc as { components?: { securitySchemes?: Record<string, Record<string, string>> } }).components?.securitySchemes ?? {};
    expect(schemes.bearer).toEqual({ type: 'http', scheme: 'bearer', description: expect.any(String) });
    expect((doc as { servers?: unknown[] }).servers).toEqual([{ url: '/', description: expect.any(String) }]);
  });

  it('a client generated with openapi-typescript + openapi-fetch compiles a full flow under strict without casts, and runs it', async () => {
    const generated = run('openapi-typescript', [docPath, '-o', join(dir, 'openapi-types.d.ts')], dir);
    expect([generated.status, generated.output]).toEqual([0, expect.any(String)]);
    expect(escapes(FLOW, await readFile(FLOW, 'utf8'))).toEqual([]);
    await writeFile(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          noEmit: true,
          noUncheckedIndexedAccess: true,
          exactOptionalPropertyTypes: true,
          skipLibCheck: false,
          target: 'ES2022',
          module: 'node16',
          moduleResolution: 'node16',
          lib: ['ES2022', 'DOM'],
          types: [],
          // `./openapi-types` of the flow is the file generated here.
          rootDirs: [dirname(FLOW), dir],
        },
        files: [FLOW],
      }),
    );
    const compiled = run('tsc', ['--noEmit', '-p', join(dir, 'tsconfig.json')], dir);
    expect([compiled.status, compiled.output]).toEqual([0, '']);

    // Then the same flow against the stack, every answer checked against the document.
    // Imported by path: the spec tsconfig cannot follow it to types that exist only in `dir`.
    const { clientFlow }: { clientFlow: (options: FlowOptions) => Promise<Record<string, unknown>> } = await import(FLOW);
    const violations: string[] = [];
    const result = await clientFlow({
      baseUrl: stack.baseUrl,
      adminToken: stack.token,
      image: TEST_IMAGE,
      fetch: async (req: Request) => {
        const res = await fetch(req);
        await stack.contract!.check(req.method, req.url, res).catch((err: Error) => {
          violations.push(err.message);
          if (!(err instanceof ContractViolation)) throw err;
        });
        return res;
      },
    });
    expect(violations).toEqual([]);
    expect(result).toMatchObject({
      tenant: 'openapi-client',
      finalStatus: 'completed',
      exitCode: 0,
      filteredLines: [{ stream: 'stderr', level: 'error', line: 'ERR-line' }],
      cancelStatus: 202,
      cancelledStatus: 'cancelled',
      secondCancelError: 'job_terminal',
      deleteStatus: 204,
      afterDeleteError: 'job_not_found',
    });
    expect(result.outputText).toMatch(/\] out-line\n/);
    expect(result.outputLines).toBeGreaterThanOrEqual(2);
    expect(result.listed).toHaveLength(1);
  }, 180000);

  it('the harness refuses an answer the document does not describe', async () => {
    const contract = stack.contract!;
    const answer = (status: number, body: unknown) =>
      new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
    const url = `${stack.baseUrl}/jobs/00000000-0000-4000-8000-000000000000`;
    await expect(contract.check('GET', url, answer(404, { error: 'job_not_found', message: 'job not found' }))).resolves.toBeUndefined();
    await expect(contract.check('GET', url, answer(500, { error: 'internal_error', message: 'x' }))).rejects.toThrow(/status not documented/);
    await expect(contract.check('GET', url, answer(404, { error: 'logs_deleted', message: 'x' }))).rejects.toThrow(/allowed values/);
    await expect(contract.check('GET', url, answer(200, { id: 'x' }))).rejects.toThrow(/does not match/);
    await expect(contract.check('PUT', url, answer(200, {}))).rejects.toThrow(/not 405/);
  });
});
