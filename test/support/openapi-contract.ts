import Ajv2020, { ErrorObject, ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { FatalProbeError } from './test-env';

type Schema = { [keyword: string]: unknown };
interface MediaType {
  schema?: Schema;
}
interface ResponseObject {
  content?: Record<string, MediaType>;
}
interface Operation {
  operationId?: string;
  responses: Record<string, ResponseObject>;
}
export interface OpenApiDocument {
  openapi: string;
  paths?: Record<string, Record<string, Operation>>;
  components?: { schemas?: Record<string, Schema> };
}

/** A response the document does not describe. A FatalProbeError, so that no `waitFor` retries past it. */
export class ContractViolation extends FatalProbeError {}

/** Where the document's components live for ajv: every `#/components/...` reference is resolved there. */
const DOC_ID = 'https://flashpods.invalid/openapi.json';

/** `schema` with its local references (`#/components/...`) pointed at the document. */
function anchored(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(anchored);
  if (schema === null || typeof schema !== 'object') return schema;
  return Object.fromEntries(
    Object.entries(schema).map(([k, v]) => [k, k === '$ref' && typeof v === 'string' && v.startsWith('#/') ? `${DOC_ID}${v}` : anchored(v)]),
  );
}

const describe = (errors: ErrorObject[] | null | undefined) =>
  (errors ?? []).map((e) => `${e.instancePath || '(body)'} ${e.message}${e.params ? ` ${JSON.stringify(e.params)}` : ''}`).join('; ');

/**
 * Checks answers against an OpenAPI 3.1 document: the status must be documented for the
 * operation, the media type among the documented ones, and a JSON body valid against its schema.
 * A path outside the API (the web UI, Bull Board, an unknown path) is only held to errors being
 * `Error`s; a documented path with a method it does not have must be `405` with `Allow`.
 */
export class OpenApiContract {
  private readonly ajv = new Ajv2020({ strict: false, allErrors: true });
  private readonly routes: { pattern: RegExp; operations: Record<string, Operation> }[];
  /** Compiled once per schema object (or component name). */
  private readonly validators = new Map<unknown, ValidateFunction>();

  constructor(readonly doc: OpenApiDocument) {
    addFormats(this.ajv);
    this.ajv.addSchema({ $id: DOC_ID, components: doc.components ?? {} });
    this.routes = Object.entries(doc.paths ?? {}).map(([template, operations]) => ({
      pattern: new RegExp(`^${template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '[^/]+')}$`),
      operations,
    }));
  }

  static async fetch(baseUrl: string): Promise<OpenApiContract> {
    const res = await fetch(`${baseUrl}/docs-json`);
    if (res.status !== 200) throw new Error(`GET /docs-json answered ${res.status}`);
    return new OpenApiContract((await res.json()) as OpenApiDocument);
  }

  /** Throws a ContractViolation unless `value` is valid against the named component schema. */
  assertSchema(name: string, value: unknown, where = name): void {
    this.assertValid({ $ref: `#/components/schemas/${name}` }, value, where, name);
  }

  /** Throws a ContractViolation unless the document describes this answer. Reads a JSON body from a clone. */
  async check(method: string, url: string, res: Response): Promise<void> {
    const { pathname } = new URL(url);
    const where = `${method} ${pathname} → ${res.status}`;
    const mediaType = (res.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase();
    const json = async () => {
      const text = await res.clone().text();
      try {
        return JSON.parse(text) as unknown;
      } catch {
        throw new ContractViolation(`${where}: the body is not JSON: ${text.slice(0, 200)}`);
      }
    };
    const route = this.routes.find((r) => r.pattern.test(pathname));
    if (!route) {
      if (res.status >= 400 && mediaType === 'application/json') this.assertSchema('Error', await json(), where);
      return;
    }
    const m = method.toLowerCase();
    const operation = route.operations[m] ?? (m === 'head' ? route.operations.get : undefined);
    if (!operation) {
      if (res.status !== 405 || !res.headers.get('allow')) {
        throw new ContractViolation(`${where}: the document has no ${method} on this path, and the answer is not 405 with Allow`);
      }
      this.assertSchema('Error', await json(), where);
      return;
    }
    const name = `${where} (${operation.operationId})`;
    const response = operation.responses[String(res.status)];
    if (!response) {
      throw new ContractViolation(`${name}: status not documented (documented: ${Object.keys(operation.responses).join(', ')})`);
    }
    if (!response.content) {
      const text = m === 'head' ? '' : await res.clone().text();
      if (text !== '') throw new ContractViolation(`${name}: documented without a body, but sent ${text.slice(0, 200)}`);
      return;
    }
    const media = response.content[mediaType];
    if (!media) {
      throw new ContractViolation(`${name}: content-type ${mediaType || '(none)'} not documented (documented: ${Object.keys(response.content).join(', ')})`);
    }
    // Only JSON bodies are read: a stream or a download is the caller's to consume.
    if (mediaType === 'application/json' && m !== 'head' && media.schema) this.assertValid(media.schema, await json(), name);
  }

  private assertValid(schema: Schema, value: unknown, where: string, key: unknown = schema): void {
    let validate = this.validators.get(key);
    if (!validate) {
      validate = this.ajv.compile(anchored(schema) as Schema);
      this.validators.set(key, validate);
    }
    if (!validate(value)) {
      throw new ContractViolation(`${where}: the body does not match the document: ${describe(validate.errors)}\n${JSON.stringify(value).slice(0, 500)}`);
    }
  }
}
