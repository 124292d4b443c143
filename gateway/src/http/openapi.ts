import type { FastifyDynamicSwaggerOptions } from '@fastify/swagger';
import type { FastifySchema } from 'fastify';
import { stableJson } from '../store/policy-tables.js';

/** Extra route schema keys the OpenAPI document reads (besides summary, description, tags). */
export interface OpenApiSchemaExtras {
  summary?: string;
  description?: string;
  tags?: string[];
  /** Request content types besides application/json, e.g. application/yaml; documented as text. */
  consumes?: string[];
  /** Response content types besides application/json; documented as text. */
  produces?: string[];
  /** Leave the route out of the document. */
  hide?: boolean;
  /** Routes anyone may call: no session or token (the login, `/health`, a guest's access request). */
  public?: boolean;
}

/** What the API document says about itself, and the schemas it names. */
export interface OpenApiOptions {
  readonly info: { readonly title: string; readonly version: string; readonly description?: string };
  /** Schemas that become `components/schemas/<name>` and are referenced wherever they occur. */
  readonly named: Readonly<Record<string, object>>;
  /** The body of every error answer (the `default` response of each operation). */
  readonly error: object;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type RouteSchema = FastifySchema & OpenApiSchemaExtras;

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const TEXT = { schema: { type: 'string' } };

/**
 * Options of `@fastify/swagger` for the API's OpenAPI 3.1 document, built from the
 * route schemas as they are (OpenAPI 3.1 takes JSON Schema; `const` stays `const`).
 * Each operation gets an `operationId` from its method and path, its security (an API
 * token, or the session cookie, with the CSRF header for a change; none when `public`),
 * text for the extra content types of
 * `consumes`/`produces`, and the error body as its `default` response; the named
 * schemas are then referenced instead of repeated.
 */
export function openApiOptions(o: OpenApiOptions): FastifyDynamicSwaggerOptions {
  return {
    openapi: {
      openapi: '3.1.0',
      info: { ...o.info },
      components: {
        schemas: structuredClone(o.named) as Record<string, never>,
        securitySchemes: {
          bearer: {
            type: 'http',
            scheme: 'bearer',
            description:
              'an API token (`portcullis token create --role admin|parent|viewer`, stored hashed, with an expiry): its role decides what it may do (admin everything, parent the VMs of their people, viewer reads)',
          },
          session: {
            type: 'apiKey',
            in: 'cookie',
            name: '__Host-portcullis-session',
            description:
              "the session of a person logged in with POST /auth/login (the cookie is `portcullis-session` on plain HTTP); the user's role decides what it may do",
          },
          csrf: {
            type: 'apiKey',
            in: 'header',
            name: 'X-CSRF-Token',
            description:
              "the session's CSRF token (from POST /auth/login or GET /auth/me): a change made with the session cookie needs it",
          },
        },
      },
    },
    convertConstToEnum: false,
    transform: ({ schema, url, route }) => ({
      // routes without a schema (the service's own resources have some) are documented too
      schema: operation((schema ?? {}) as RouteSchema, methodOf(route.method), url, o.error),
      url,
    }),
    transformObject: (document) => {
      if (!('openapiObject' in document)) throw new Error('@fastify/swagger built a Swagger 2 document');
      return withRefs(document.openapiObject as Json as { [k: string]: Json }) as never;
    },
  };
}

function methodOf(method: string | readonly string[]): string {
  return typeof method === 'string' ? method : (method[0] ?? 'GET');
}

/** A route schema as @fastify/swagger should document it. */
function operation(s: RouteSchema, method: string, url: string, error: object): FastifySchema {
  const path = url.replace(/:([A-Za-z0-9_]+)/g, '$1');
  const { consumes, produces, public: open, response, body, ...rest } = s;
  const out: FastifySchema = {
    ...rest,
    operationId: `${method.toLowerCase()}${path.replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ?? '').toUpperCase())}`,
  };
  if (body !== undefined) {
    out.body = {
      content: {
        'application/json': { schema: body },
        ...Object.fromEntries((consumes ?? []).map((type) => [type, TEXT])),
      },
    };
  }
  const responses: Record<string, unknown> = {};
  for (const [status, schema] of Object.entries(
    (response ?? {}) as Record<string, { description?: string }>,
  )) {
    responses[status] =
      status === '204'
        ? { type: 'null', description: schema.description ?? 'done' }
        : {
            description: schema.description ?? 'success',
            content: {
              'application/json': { schema },
              ...Object.fromEntries((produces ?? []).map((type) => [type, TEXT])),
            },
          };
  }
  responses.default = { description: 'an error', content: { 'application/json': { schema: error } } };
  out.response = responses;
  if (!open)
    out.security = MUTATING.has(method)
      ? [{ bearer: [] }, { session: [], csrf: [] }]
      : [{ bearer: [] }, { session: [] }];
  return out;
}

/** The document with every copy of a named schema replaced by a `$ref` to it. */
function withRefs(document: { [k: string]: Json }): Json {
  const parts = (document.components ?? {}) as { [k: string]: Json };
  const components = (parts.schemas ?? {}) as Record<string, Json>;
  const byJson = new Map<string, string>();
  for (const [name, schema] of Object.entries(components)) byJson.set(stableJson(schema), name);
  const walk = (v: Json, own?: string): Json => {
    if (v === null || typeof v !== 'object') return v;
    if (Array.isArray(v)) return v.map((x) => walk(x));
    const name = byJson.get(stableJson(v));
    if (name !== undefined && name !== own) return { $ref: `#/components/schemas/${name}` };
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
  };
  const schemas = Object.fromEntries(Object.entries(components).map(([name, s]) => [name, walk(s, name)]));
  return { ...document, paths: walk(document.paths ?? {}), components: { ...parts, schemas } };
}
