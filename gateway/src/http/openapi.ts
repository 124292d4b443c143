import type { FastifySchema, RouteOptions } from 'fastify';
import { stableJson } from '../store/policy-tables.js';

/** Extra route schema keys the OpenAPI document reads. */
export interface OpenApiSchemaExtras {
  summary?: string;
  description?: string;
  tags?: string[];
  /** Request content types besides application/json, e.g. application/yaml. */
  consumes?: string[];
  /** Response content types besides application/json. */
  produces?: string[];
  /** Leave the route out of the document. */
  hide?: boolean;
  /** Mutating routes that do not need the API token. */
  public?: boolean;
}

interface CollectedRoute {
  readonly method: string;
  readonly url: string;
  readonly schema: FastifySchema & OpenApiSchemaExtras;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * Builds an OpenAPI 3.1 document from the route schemas. OpenAPI 3.1 takes JSON Schema
 * as it is, so the TypeBox schemas go in unchanged; schemas listed in `named` become
 * `components/schemas` and are referenced wherever they occur.
 */
export class OpenApiCollector {
  readonly #routes: CollectedRoute[] = [];
  readonly #named: Record<string, object>;
  readonly #info: { title: string; version: string; description?: string };
  #document: Json | undefined;

  constructor(named: Record<string, object>, info: { title: string; version: string; description?: string }) {
    this.#named = named;
    this.#info = info;
  }

  /** An `onRoute` hook: remembers every route with a schema. */
  readonly onRoute = (route: RouteOptions): void => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const schema = (route.schema ?? {}) as FastifySchema & OpenApiSchemaExtras;
    if (schema.hide) return;
    for (const method of methods) {
      if (method === 'HEAD' || method === 'OPTIONS') continue;
      this.#routes.push({ method, url: route.url, schema });
    }
    this.#document = undefined;
  };

  /** The document (built once, after the routes are known). */
  document(): Json {
    this.#document ??= this.#build();
    return this.#document;
  }

  #build(): Json {
    const byJson = new Map<string, string>();
    const components: Record<string, Json> = {};
    for (const [name, schema] of Object.entries(this.#named)) byJson.set(stableJson(schema), name);
    const ref = (schema: unknown, root?: string): Json => this.#toJson(schema, byJson, root);
    for (const [name, schema] of Object.entries(this.#named)) components[name] = ref(schema, name);

    const paths: Record<string, Record<string, Json>> = {};
    for (const r of this.#routes) {
      const path = r.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
      const s = r.schema;
      const op: Record<string, Json> = {};
      if (s.summary) op.summary = s.summary;
      if (s.description) op.description = s.description;
      if (s.tags) op.tags = s.tags;
      op.operationId = `${r.method.toLowerCase()}${path.replace(/[{}]/g, '').replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ?? '').toUpperCase())}`;
      const parameters: Json[] = [
        ...this.#parameters(s.params, 'path', ref),
        ...this.#parameters(s.querystring, 'query', ref),
      ];
      if (parameters.length > 0) op.parameters = parameters;
      if (s.body) {
        const content: Record<string, Json> = { 'application/json': { schema: ref(s.body) } };
        for (const type of s.consumes ?? []) content[type] = { schema: { type: 'string' } };
        op.requestBody = { required: true, content };
      }
      const responses: Record<string, Json> = {};
      for (const [status, schema] of Object.entries((s.response ?? {}) as Record<string, unknown>)) {
        const described = schema as { description?: string };
        if (status === '204') {
          responses[status] = { description: described.description ?? 'done' };
          continue;
        }
        const content: Record<string, Json> = { 'application/json': { schema: ref(schema) } };
        for (const type of s.produces ?? []) content[type] = { schema: { type: 'string' } };
        responses[status] = { description: described.description ?? 'success', content };
      }
      responses.default = {
        description: 'an error',
        content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
      };
      op.responses = responses;
      if (MUTATING.has(r.method) && !s.public) op.security = [{ bearer: [] }];
      (paths[path] ??= {})[r.method.toLowerCase()] = op;
    }
    return {
      openapi: '3.1.0',
      info: this.#info,
      paths,
      components: {
        schemas: components,
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: 'the API token, when one is configured' },
        },
      },
    };
  }

  #parameters(schema: unknown, where: 'path' | 'query', ref: (s: unknown) => Json): Json[] {
    const obj = schema as
      { properties?: Record<string, { description?: string }>; required?: string[] } | undefined;
    if (!obj?.properties) return [];
    return Object.entries(obj.properties).map(([name, prop]) => {
      const p: Record<string, Json> = {
        name,
        in: where,
        required: where === 'path' || (obj.required ?? []).includes(name),
        schema: ref(prop),
      };
      if (prop.description) p.description = prop.description;
      return p;
    });
  }

  /** Plain JSON of a schema (TypeBox's symbol keys dropped), named sub-schemas as `$ref`s. */
  #toJson(schema: unknown, byJson: Map<string, string>, root?: string): Json {
    const walk = (v: unknown, top: boolean): Json => {
      if (v === null || typeof v !== 'object') return v as Json;
      if (Array.isArray(v)) return v.map((x) => walk(x, false));
      const name = byJson.get(stableJson(v));
      if (name !== undefined && !(top && name === root)) return { $ref: `#/components/schemas/${name}` };
      const out: Record<string, Json> = {};
      for (const [k, x] of Object.entries(v)) out[k] = walk(x, false);
      return out;
    };
    return walk(schema, true);
  }
}
