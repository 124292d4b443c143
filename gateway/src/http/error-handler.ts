import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { Counter, type Registry } from 'prom-client';
import { ERROR_CODES, isPortcullisError, type ErrorCode, type Issue } from '../errors.js';
import type { ErrorResponse } from './schemas.js';

const REJECTED = 'portcullis_api_requests_rejected_total';

/** The counter of rejected API requests, by error code; created once per registry. */
export function rejectedCounter(registry: Registry): Counter<'code'> {
  const existing = registry.getSingleMetric(REJECTED);
  if (existing) return existing as Counter<'code'>;
  return new Counter({
    name: REJECTED,
    help: 'API requests answered with an error, by error code',
    labelNames: ['code'],
    registers: [registry],
  });
}

/** Where a policy path lands in the request: `/vms/2/mac` with subject `/vms/2` is `/body/mac`. */
function inRequest(path: string | undefined, subject: unknown): string | undefined {
  if (path === undefined || typeof subject !== 'string') return path;
  if (path !== subject && !path.startsWith(`${subject}/`)) return path;
  const rest = path.slice(subject.length);
  return rest === '' || rest === '/' ? '/body' : `/body${rest}`;
}

/** How Fastify's own errors answer. */
const FASTIFY_CODES: Record<string, { code: ErrorCode; path?: string; message?: string }> = {
  FST_ERR_CTP_INVALID_JSON_BODY: { code: 'REQUEST_INVALID', path: '/body' },
  FST_ERR_CTP_EMPTY_JSON_BODY: {
    code: 'REQUEST_INVALID',
    path: '/body',
    message: 'the JSON body is empty; send a JSON document or no content type',
  },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { code: 'REQUEST_INVALID', path: '/body' },
  FST_ERR_CTP_BODY_TOO_LARGE: { code: 'REQUEST_TOO_LARGE', path: '/body' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: {
    code: 'UNSUPPORTED_MEDIA_TYPE',
    path: '/headers/content-type',
    message:
      'unsupported content type; send application/json (or application/yaml where a policy is expected)',
  },
};

/** The answer for any error: its status and `{code, message, path}` body. */
export function errorResponse(err: unknown): { status: number; body: ErrorResponse; internal: boolean } {
  if (isPortcullisError(err)) {
    const subject = err.context?.subject;
    const body: ErrorResponse = { code: err.code, message: err.message };
    const path = inRequest(err.path, subject);
    if (path !== undefined) body.path = path;
    const issues = err.context?.issues as Issue[] | undefined;
    if (Array.isArray(issues) && issues.length > 0) {
      body.issues = issues.map((i) => ({ ...i, path: inRequest(i.path, subject) ?? i.path }));
      if (typeof subject === 'string') {
        // the message names policy paths; name the request's instead
        body.message = `${err.message.split(':')[0]}: ${body.issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`;
      }
    }
    return { status: err.status, body, internal: err.status >= 500 };
  }
  const fe = err as Partial<FastifyError>;
  const known = fe.code !== undefined ? FASTIFY_CODES[fe.code] : undefined;
  if (known) {
    const body: ErrorResponse = { code: known.code, message: known.message ?? String(fe.message) };
    if (known.path) body.path = known.path;
    return { status: ERROR_CODES[known.code], body, internal: false };
  }
  const status = typeof fe.statusCode === 'number' ? fe.statusCode : 500;
  if (status === 404)
    return { status, body: { code: 'NOT_FOUND', message: String(fe.message) }, internal: false };
  if (status >= 400 && status < 500) {
    return {
      status: ERROR_CODES.REQUEST_INVALID,
      body: { code: 'REQUEST_INVALID', message: String(fe.message) },
      internal: false,
    };
  }
  return {
    status: 500,
    body: { code: 'INTERNAL', message: 'internal error; the service log has the details' },
    internal: true,
  };
}

/**
 * The error handler of the API: every error answers `{code, message, path}` with the
 * status of its code, and counts in `portcullis_api_requests_rejected_total{code}`.
 */
export function makeErrorHandler(counter: Counter<'code'>) {
  return function apiErrorHandler(err: unknown, req: FastifyRequest, reply: FastifyReply): void {
    const { status, body, internal } = errorResponse(err);
    if (internal) req.log.error({ err }, 'request failed');
    else req.log.info({ code: body.code, path: body.path }, body.message);
    counter.inc({ code: body.code });
    if (body.code === 'UNAUTHORIZED') void reply.header('www-authenticate', 'Bearer');
    void reply.code(status).type('application/json; charset=utf-8').send(body);
  };
}
