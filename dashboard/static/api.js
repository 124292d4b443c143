// The REST API client: JSON in and out, the API token from this browser's storage.

export const API = '/api/v1';
const TOKEN_KEY = 'portcullis.token';

/** The API token saved in this browser, or ''. */
export function getToken() {
  return window.localStorage.getItem(TOKEN_KEY) ?? '';
}

/** Saves the API token ('' forgets it). */
export function setToken(token) {
  if (token) window.localStorage.setItem(TOKEN_KEY, token);
  else window.localStorage.removeItem(TOKEN_KEY);
}

/** An error answer of the API: `{code, message, path, issues}`, or a failed connection. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body.message);
    this.status = status;
    this.code = body.code;
    this.path = body.path;
    this.issues = body.issues ?? [];
  }

  /** Every problem as `{path, message}`, with the message not repeating its path. */
  problems() {
    const list = this.issues.length > 0 ? this.issues : [{ path: this.path, message: this.message }];
    return list.map(({ path, message }) => ({ path, message: readable(path, message) }));
  }
}

/** "/body/to/cidr: x is not valid: …" reads "x is not valid: …" next to its field. */
function readable(path, message) {
  if (path && message.startsWith(`${path}: `)) message = message.slice(path.length + 2);
  return message.charAt(0).toUpperCase() + message.slice(1);
}

/**
 * Calls the API. `path` is under /api/v1 (`/vms`). Changes carry the token, when one
 * is saved, and name the dashboard as the actor in the audit log.
 * @returns the JSON answer, or null for 204.
 * @throws ApiError
 */
export async function api(method, path, body) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET') {
    headers['x-portcullis-actor'] = 'dashboard';
    const token = getToken();
    if (token) headers.authorization = `Bearer ${token}`;
  }
  let res;
  try {
    res = await fetch(`${API}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, {
      code: 'UNREACHABLE',
      message: 'The gateway did not answer. Check the connection and try again.',
    });
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let data;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = {
      code: 'BAD_ANSWER',
      message: `The gateway answered ${res.status} with something that is not JSON.`,
    };
  }
  if (!res.ok)
    throw new ApiError(res.status, data ?? { code: 'HTTP_' + res.status, message: res.statusText });
  return data;
}

/** URL path segment for a name. */
export const seg = encodeURIComponent;

/**
 * Counters from /metrics (Prometheus text), as `{name, labels, value}`, or [] when
 * the service does not expose them here.
 */
export async function metrics() {
  try {
    const res = await fetch('/metrics');
    if (!res.ok) return [];
    return parseMetrics(await res.text());
  } catch {
    return [];
  }
}

function parseMetrics(text) {
  const samples = [];
  const line = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
  const label = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const row of text.split('\n')) {
    if (row.startsWith('#')) continue;
    const m = line.exec(row);
    if (!m) continue;
    const labels = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(label)) labels[k] = v;
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}
