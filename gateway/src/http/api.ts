import { createHash, timingSafeEqual } from 'node:crypto';
import swagger from '@fastify/swagger';
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import { PortcullisError } from '../errors.js';
import type { EventBus } from '../events.js';
import type { PolicyService } from '../control/policy-service.js';
import type { Store } from '../store/store.js';
import { AccessRequestIntake } from '../parental/access-requests.js';
import { accessRequestRoutes } from './access-requests.js';
import { auditRoutes } from './audit.js';
import { makeErrorHandler, rejectedCounter } from './error-handler.js';
import { healthRoutes } from './health.js';
import { openApiOptions, type OpenApiSchemaExtras } from './openapi.js';
import { YAML_TYPES, policyRoutes } from './policy.js';
import { profileRoutes } from './profiles.js';
import { doc, type ApiDeps } from './route-helpers.js';
import { ruleRoutes } from './rules.js';
import { scheduleRoutes } from './schedules.js';
import { ErrorResponse, NAMED_SCHEMAS } from './schemas.js';
import { typeboxValidatorCompiler } from './validation.js';
import { vmRoutes } from './vms.js';
import { systemClock, type Clock } from '../clock.js';

/** The API's URL prefix. */
export const API_PREFIX = '/api/v1';

/** Options of `registerApi`. */
export interface ApiOptions {
  /** The one place policy changes. */
  readonly policy: PolicyService;
  /** For the audit log, access requests and health. */
  readonly store: Store;
  /** Where `portcullis_api_requests_rejected_total{code}` is registered. */
  readonly registry: Registry;
  /**
   * API token. When set, mutating requests (POST, PUT, PATCH, DELETE) need
   * `Authorization: Bearer <token>`, except creating an access request. Default: none.
   */
  readonly token?: string | undefined;
  /** Clock for access request approvals and export stamps; default {@link systemClock}. */
  readonly now?: Clock;
  /** Largest policy document `PUT /policy` accepts, in bytes; default 8 MiB. */
  readonly policyBodyLimit?: number;
  /** API version in the OpenAPI document; default 0.1.0. */
  readonly version?: string;
  /** The service's event bus. Not used by the API yet (reserved for a live feed). */
  readonly events?: EventBus;
  /**
   * More resource plugins of the service (parental, IPS, VM state), registered inside
   * the API so the token, the error handler and the OpenAPI document cover them too.
   */
  readonly plugins?: ReadonlyArray<(app: FastifyInstance) => Promise<void>>;
  /**
   * The access request rules (validation, de-duplication, per-VM cap and rate), shared
   * with the block page. Default: one of its own with the default limits.
   */
  readonly accessRequests?: AccessRequestIntake;
}

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * The REST API as one encapsulated Fastify plugin: one plugin per resource, the OpenAPI
 * document at `openapi.json`, one error handler answering `{code, message, path}`,
 * TypeBox validation, unknown routes answered 404 NOT_FOUND, and the optional API token.
 *
 * Register it under the API prefix:
 * `await app.register(registerApi, { prefix: API_PREFIX, policy, store, registry, token })`.
 * It never listens; tests use `app.inject()`.
 */
export const registerApi: FastifyPluginAsync<ApiOptions> = async (app, opts) => {
  const deps: ApiDeps = { policy: opts.policy, store: opts.store, now: opts.now ?? systemClock };
  const counter = rejectedCounter(opts.registry);
  const bodyLimit = opts.policyBodyLimit ?? 8 * 1024 * 1024;

  // first, so that it sees every route registered after it
  await app.register(
    swagger,
    openApiOptions({
      info: {
        title: 'Portcullis API',
        version: opts.version ?? '0.1.0',
        description:
          'Per-VM policy, quarantine, schedules, access requests and audit of the Portcullis gateway.',
      },
      named: NAMED_SCHEMAS,
      error: ErrorResponse,
    }),
  );
  app.setValidatorCompiler(typeboxValidatorCompiler);
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  app.setErrorHandler(makeErrorHandler(counter));
  app.addContentTypeParser(YAML_TYPES, { parseAs: 'string', bodyLimit }, (_req, body, done) =>
    done(null, body),
  );
  if (opts.token !== undefined && opts.token !== '') {
    const check = tokenCheck(opts.token);
    app.addHook('onRequest', async (req) => {
      if (!MUTATING.has(req.method)) return;
      if ((req.routeOptions.schema as OpenApiSchemaExtras | undefined)?.public) return;
      if (!check(req)) {
        throw new PortcullisError(
          'UNAUTHORIZED',
          'this change needs the API token: send Authorization: Bearer <token>',
          {
            path: '/headers/authorization',
          },
        );
      }
    });
  }

  app.get('/openapi.json', { schema: doc({ hide: true }, {}) }, async () => app.swagger());
  app.setNotFoundHandler((req, reply) => {
    counter.inc({ code: 'NOT_FOUND' });
    void reply
      .code(404)
      .send({ code: 'NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0]}` });
  });

  await app.register(healthRoutes, { deps });
  await app.register(vmRoutes, { deps });
  await app.register(ruleRoutes, { deps });
  await app.register(profileRoutes, { deps });
  await app.register(scheduleRoutes, { deps });
  await app.register(policyRoutes, { deps, bodyLimit });
  await app.register(auditRoutes, { deps });
  const intake =
    opts.accessRequests ??
    new AccessRequestIntake({ store: opts.store, registry: opts.registry, now: deps.now });
  await app.register(accessRequestRoutes, { deps, intake });
  for (const plugin of opts.plugins ?? []) await app.register(plugin);
};

/** Compares the Authorization header with the token in constant time. */
function tokenCheck(token: string): (req: FastifyRequest) => boolean {
  const want = createHash('sha256').update(`Bearer ${token}`).digest();
  return (req) => {
    const got = req.headers.authorization;
    if (typeof got !== 'string') return false;
    return timingSafeEqual(createHash('sha256').update(got).digest(), want);
  };
}
