// The REST API client: JSON in and out. The browser sends the session cookie (HttpOnly,
// SameSite=Strict) itself; changes carry the session's CSRF token.

export const API = '/api/v1';

/** Who is logged in (`GET /auth/me`): name, role, VMs of a parent, CSRF token; or null. */
let session = null;

/** The logged-in user, or null. */
export function currentUser() {
  return session;
}

/** Remember who is logged in (the answer of login or /auth/me); null forgets. */
export function setSession(me) {
  session = me;
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
 * Calls the API. `path` is under /api/v1 (`/vms`). Changes carry the session's CSRF
 * token; when the service no longer knows that token (it restarted), the session's
 * current one is fetched and the change sent once more. A 401 (the session ended)
 * tells the page to show the login (event `portcullis:logged-out`).
 * @returns the JSON answer, or null for 204.
 * @throws ApiError
 */
export async function api(method, path, body, { retried = false } = {}) {
  try {
    return await send(method, path, body);
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    if (err.status === 401 && !path.startsWith('/auth/login')) {
      session = null;
      window.dispatchEvent(new window.Event('portcullis:logged-out'));
    }
    if (err.status === 403 && err.path === '/headers/x-csrf-token' && !retried) {
      session = await send('GET', '/auth/me');
      return api(method, path, body, { retried: true });
    }
    throw err;
  }
}

async function send(method, path, body) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && session?.csrfToken) headers['x-csrf-token'] = session.csrfToken;
  let res;
  try {
    res = await fetch(`${API}${path}`, {
      method,
      headers,
      credentials: 'same-origin',
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

/** Log in; remembers the session. @throws ApiError (401 wrong password, 429 too many tries) */
export async function login(user, password) {
  session = await api('POST', '/auth/login', { user, password });
  return session;
}

/** Who is logged in, asked from the service (null when nobody is). */
export async function whoAmI() {
  try {
    session = await send('GET', '/auth/me');
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) session = null;
    else throw err;
  }
  return session;
}

/** Log out here (`everywhere`: every browser of this user). */
export async function logout(everywhere = false) {
  try {
    await api('POST', everywhere ? '/auth/logout-everywhere' : '/auth/logout');
  } finally {
    session = null;
  }
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
