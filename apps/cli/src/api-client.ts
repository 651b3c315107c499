import { ApiResponseError, CliError } from './cli-error';
import { ExitCode } from './exit-codes';
import { CliConfig } from './cli-config';

export type Query = Record<string, string | number | undefined>;

export interface RequestOptions {
  query?: Query;
  body?: unknown;
  /** Abort after this long; `0` for none (a download may take as long as it takes). */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;

/**
 * HTTP to the Flashpods API. The token travels only in the `Authorization` header (the API
 * refuses it in a URL). Every failure becomes a `CliError`: `ApiResponseError` for an error
 * answer, `Unavailable` when the API cannot be reached.
 */
export class ApiClient {
  constructor(
    private readonly config: CliConfig,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {}

  get baseUrl(): string {
    return this.config.baseUrl;
  }

  url(path: string, query: Query = {}): string {
    const url = new URL(this.config.baseUrl + path);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, String(v));
    return url.toString();
  }

  /** `fetch` with the bearer token, for callers that read the answer themselves (SSE, download). */
  readonly authFetch = (input: string | URL, init: RequestInit = {}): Promise<Response> => {
    const headers = new Headers(init.headers);
    headers.set('authorization', `Bearer ${this.config.token}`);
    return this.fetchImpl(input, { ...init, headers });
  };

  /** Sends the request; throws `Unavailable` if no answer comes. Any status is returned. */
  async send(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    try {
      return await this.authFetch(this.url(path, opts.query), {
        method,
        headers: opts.body === undefined ? {} : { 'content-type': 'application/json' },
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
        signal: timeoutMs > 0 ? AbortSignal.timeout(timeoutMs) : undefined,
      });
    } catch (err) {
      throw this.unreachable(err);
    }
  }

  /** Sends the request and returns its JSON body (undefined for 204); throws on an error answer. */
  async json<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.send(method, path, opts);
    if (!res.ok) throw await errorOf(res);
    const text = await res.text().catch((err: unknown) => {
      throw this.unreachable(err);
    });
    if (res.status === 204 || text === '') return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new CliError(`the API at ${this.baseUrl} answered ${res.status} with something that is not JSON`, ExitCode.Unavailable);
    }
  }

  unreachable(err: unknown): CliError {
    if (err instanceof CliError) return err;
    const e = err as Error & { cause?: { code?: string; message?: string } };
    if (e?.name === 'TimeoutError') return new CliError(`the API at ${this.baseUrl} did not answer in time`, ExitCode.Unavailable);
    const why = e?.cause?.code ?? e?.cause?.message ?? e?.message ?? String(err);
    return new CliError(`cannot reach the API at ${this.baseUrl}: ${why}`, ExitCode.Unavailable);
  }
}

/** The API's `{"error", "message"}` answer as an error; a body that is not one still says the status. */
export async function errorOf(res: Response): Promise<ApiResponseError> {
  const text = await res.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { error?: unknown; message?: unknown };
    if (typeof body.error === 'string') {
      return new ApiResponseError(res.status, body.error, typeof body.message === 'string' ? body.message : '');
    }
  } catch {
    // not JSON: a proxy's page, say
  }
  return new ApiResponseError(res.status, `http_${res.status}`, res.statusText || text.slice(0, 200).replace(/\s+/g, ' '));
}
