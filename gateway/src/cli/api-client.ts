import { ERROR_CODES, PortcullisError, type ErrorCode } from '../errors.js';

/** Options of `ApiClient`. */
export interface ApiClientOptions {
  /** Where the service listens, e.g. `http://127.0.0.1:8080` (the `/api/v1` prefix is added). */
  readonly baseUrl: string;
  /** API token, sent as `Authorization: Bearer <token>`; default: none. */
  readonly token?: string | undefined;
  /** Who is acting, for the audit log (`X-Portcullis-Actor`); default: none (the API records `api`). */
  readonly actor?: string | undefined;
  /** Why, for the audit log (`X-Portcullis-Reason`); default: none. */
  readonly reason?: string | undefined;
  /** How long to wait for an answer, in ms; default 30 000. */
  readonly timeoutMs?: number;
  /** The fetch to use; default the global one. */
  readonly fetch?: typeof fetch;
}

/** One request's details. */
export interface RequestOptions {
  /** Sent as JSON. */
  readonly body?: unknown;
  /** Sent as it is, with `contentType`. */
  readonly raw?: string;
  readonly contentType?: string;
  readonly accept?: string;
  readonly query?: Record<string, string | number | undefined>;
}

/**
 * A small client of the Portcullis REST API. An error answer becomes a PortcullisError
 * with the API's code, its message and its path (also appended to the message, so
 * the CLI prints all three); an API that cannot be reached is API_UNREACHABLE.
 */
export class ApiClient {
  readonly #base: string;
  readonly #headers: Record<string, string>;
  readonly #timeoutMs: number;
  readonly #fetch: typeof fetch;

  constructor(options: ApiClientOptions) {
    this.#base = `${options.baseUrl.replace(/\/+$/, '')}/api/v1`;
    this.#headers = {};
    if (options.token) this.#headers.authorization = `Bearer ${options.token}`;
    if (options.actor) this.#headers['x-portcullis-actor'] = options.actor;
    if (options.reason) this.#headers['x-portcullis-reason'] = encodeURIComponent(options.reason);
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#fetch = options.fetch ?? fetch;
  }

  /** GET, answer parsed as JSON. */
  get<T>(path: string, query?: RequestOptions['query']): Promise<T> {
    return this.request<T>('GET', path, { query });
  }

  post<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('POST', path, { body });
  }

  put<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PUT', path, { body });
  }

  patch<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PATCH', path, { body });
  }

  delete<T = undefined>(path: string): Promise<T> {
    return this.request<T>('DELETE', path, {});
  }

  /** GET, answer as text (e.g. the policy as YAML). */
  async text(path: string, options: Omit<RequestOptions, 'body' | 'raw'> = {}): Promise<string> {
    const res = await this.#send('GET', path, options);
    return res.text();
  }

  /** GET, answer as bytes (e.g. a capture's pcap). */
  async bytes(path: string): Promise<Buffer> {
    const res = await this.#send('GET', path, {});
    return Buffer.from(await res.arrayBuffer());
  }

  /**
   * Any request; a JSON answer is parsed, 204 gives undefined.
   * @throws PortcullisError with the API's code; API_UNREACHABLE when there is no answer.
   */
  async request<T>(method: string, path: string, options: RequestOptions): Promise<T> {
    const res = await this.#send(method, path, options);
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    return (text === '' ? undefined : JSON.parse(text)) as T;
  }

  async #send(method: string, path: string, options: RequestOptions): Promise<Response> {
    const url = new URL(`${this.#base}${path}`);
    for (const [k, v] of Object.entries(options.query ?? {}))
      if (v !== undefined) url.searchParams.set(k, String(v));
    const headers: Record<string, string> = { ...this.#headers };
    let body: string | undefined;
    if (options.raw !== undefined) {
      body = options.raw;
      headers['content-type'] = options.contentType ?? 'application/json';
    } else if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] = 'application/json';
    }
    if (options.accept) headers.accept = options.accept;
    let res: Response;
    try {
      res = await this.#fetch(url, { method, headers, body, signal: AbortSignal.timeout(this.#timeoutMs) });
    } catch (err) {
      const cause =
        err instanceof Error ? ((err.cause as Error | undefined)?.message ?? err.message) : String(err);
      throw new PortcullisError(
        'API_UNREACHABLE',
        `cannot reach the API at ${this.#base}: ${cause}; is portcullis running? Set --api or PORTCULLIS_API`,
        { cause: err },
      );
    }
    if (!res.ok) throw await apiError(res);
    return res;
  }
}

/** The API's `{code, message, path}` answer as a PortcullisError. */
async function apiError(res: Response): Promise<PortcullisError> {
  const text = await res.text();
  let body: { code?: unknown; message?: unknown; path?: unknown } = {};
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    // not our API, or a proxy in between
  }
  const code: ErrorCode =
    typeof body.code === 'string' && body.code in ERROR_CODES ? (body.code as ErrorCode) : 'INTERNAL';
  const message =
    typeof body.message === 'string' ? body.message : `HTTP ${res.status}: ${text.slice(0, 200)}`;
  const path = typeof body.path === 'string' ? body.path : undefined;
  return new PortcullisError(
    code,
    path === undefined || message.includes(path) ? message : `${message} (at ${path})`,
    {
      path,
      context: { status: res.status },
    },
  );
}
