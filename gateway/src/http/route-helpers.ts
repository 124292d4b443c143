import type { FastifyRequest, FastifySchema } from 'fastify';
import { PortcullisError } from '../errors.js';
import type { PolicyService, MutationContext } from '../control/policy-service.js';
import type { Store } from '../store/store.js';
import type { OpenApiSchemaExtras } from './openapi.js';
import type { Clock } from '../clock.js';
import { actorOf } from '../auth/access.js';

/** What the resource plugins work with. */
export interface ApiDeps {
  readonly policy: PolicyService;
  readonly store: Store;
  readonly now: Clock;
}

/** Options every resource plugin takes. */
export interface ResourceOptions {
  readonly deps: ApiDeps;
}

/** A route schema with its documentation (summary, tags …) for the OpenAPI document. */
export function doc<S extends FastifySchema>(extras: OpenApiSchemaExtras, schema: S): S {
  return { ...schema, ...extras };
}

const ACTOR = /^[A-Za-z0-9._:@-]{1,64}$/;

/**
 * Who makes an API change, for the audit log: the authenticated principal (`user:<name>`,
 * `token:<name>`) where the service authenticates (`installAuth`); on an API without
 * it (tests), `api`, or `api:<name>` from the `X-Portcullis-Actor` header. The reason
 * comes from `X-Portcullis-Reason`.
 * @throws REQUEST_INVALID for a malformed actor header.
 */
export function mutationContext(req: FastifyRequest, reason?: string): MutationContext {
  const why = reasonOf(req, reason);
  // the service authenticates: the audit log names who logged in, never a claimed name
  if (req.principal) return { actor: actorOf(req.principal), reason: why };
  const header = req.headers['x-portcullis-actor'];
  const name = Array.isArray(header) ? header[0] : header;
  if (name !== undefined && !ACTOR.test(name)) {
    throw new PortcullisError(
      'REQUEST_INVALID',
      'X-Portcullis-Actor must be 1 to 64 letters, digits or ._:@-',
      {
        path: '/headers/x-portcullis-actor',
      },
    );
  }
  return { actor: name === undefined ? 'api' : `api:${name}`, reason: why };
}

/** The reason given, else the `X-Portcullis-Reason` header, at most 500 characters. */
function reasonOf(req: FastifyRequest, reason: string | undefined): string | undefined {
  const reasonHeader = req.headers['x-portcullis-reason'];
  const headerReason = Array.isArray(reasonHeader) ? reasonHeader[0] : reasonHeader;
  return reason ?? (headerReason === undefined ? undefined : decodeHeader(headerReason).slice(0, 500));
}

/** Header values are ASCII: clients percent-encode other text. */
function decodeHeader(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
