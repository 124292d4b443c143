import { randomBytes } from 'node:crypto';
import cookie from '@fastify/cookie';
import csrf from '@fastify/csrf-protection';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { Counter, type Registry } from 'prom-client';
import {
  actorOf,
  decide,
  filterList,
  scheduleIsMine,
  vmsOf,
  type Principal,
  type Scope,
} from '../auth/access.js';
import { crossSite, hostAllowed, type HostPolicy } from '../auth/host-check.js';
import { FailureLimiter } from '../auth/limiter.js';
import { dummyHash, verifyPassword } from '../auth/password.js';
import { sameSecret } from '../auth/secrets.js';
import { systemClock, type Clock } from '../clock.js';
import { PortcullisError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Policy } from '../policy/model.js';
import type { SessionLimits, User } from '../store/auth.js';
import type { Store } from '../store/store.js';
import { makeErrorHandler, rejectedCounter } from './error-handler.js';
import type { OpenApiSchemaExtras } from './openapi.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who makes the request, once the auth hook has found out; undefined: nobody. */
    principal: Principal | undefined;
  }
}

/** Options of `installAuth`. */
export interface AuthOptions {
  readonly store: Store;
  /** The policy in force: a parent's VMs are those whose owner they look after. */
  readonly policy: { current(): Policy };
  /** The names and addresses this listener answers to. */
  readonly hosts: HostPolicy;
  /** Whether the listener speaks TLS: the cookies are then `Secure` and `__Host-` named. */
  readonly secure: boolean;
  readonly session: SessionLimits;
  /** Logins per client address per window (@fastify/rate-limit); default 10. */
  readonly loginsPerAddress?: number;
  /** Failed logins per user name per window before it is refused; default 5. */
  readonly failuresPerUser?: number;
  /** The login limits' window, in ms; default 60 000. */
  readonly loginWindowMs?: number;
  /** The config's legacy API token: an admin token. Default none. */
  readonly configToken?: string | undefined;
  /** Client addresses that may read `/metrics` without a token (a Prometheus). Default none. */
  readonly scrapers?: readonly string[];
  /** The API's URL prefix; default `/api/v1`. */
  readonly apiPrefix?: string;
  readonly registry: Registry;
  readonly log: Logger;
  readonly now?: Clock;
}

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
/** API routes anyone may call (the login itself, liveness, the API's description). */
const PUBLIC_API = new Set(['GET /health', 'GET /openapi.json', 'POST /auth/login']);

/**
 * Authentication and authorization of the management listener, installed on the root
 * Fastify instance before any route:
 *
 * 1. every request: the Host header must name this listener (else 421: DNS
 *    rebinding), and a browser's Origin / Sec-Fetch-Site must be this site (else 403);
 * 2. who: `Authorization: Bearer <API token>` (or the config's legacy token), else
 *    the session cookie (server-side session in the store, idle and absolute expiry);
 * 3. what: the API and `/metrics` need a principal (401) whose role allows the route
 *    (403, `auth/access.ts`); a parent's requests are checked against their VMs, and
 *    lists are cut down to them; the dashboard's files, the login, `/health`, the
 *    OpenAPI document and the guests' access request stay public;
 * 4. a change made with the session cookie needs the CSRF token
 *    (@fastify/csrf-protection, bound to the session) in `X-CSRF-Token`.
 *
 * Returns the API plugin of `/auth` (login, logout, logout everywhere, me), to
 * register inside the API.
 */
export async function installAuth(app: FastifyInstance, opts: AuthOptions): Promise<FastifyPluginAsync> {
  const now = opts.now ?? systemClock;
  const prefix = (opts.apiPrefix ?? '/api/v1').replace(/\/$/, '');
  const { store } = opts;
  const cookieName = opts.secure ? '__Host-portcullis-session' : 'portcullis-session';
  const csrfCookie = opts.secure ? '__Host-portcullis-csrf' : 'portcullis-csrf';
  const cookieOpts = {
    path: '/',
    httpOnly: true,
    sameSite: 'strict' as const,
    secure: opts.secure,
  };
  const windowMs = opts.loginWindowMs ?? 60_000;
  const perUser = new FailureLimiter({ max: opts.failuresPerUser ?? 5, windowMs, now });
  const scrapers = new Set(opts.scrapers ?? []);
  const logins = new Counter({
    name: 'portcullis_logins_total',
    help: 'Login attempts by result (ok, failed, limited)',
    labelNames: ['result'],
    registers: [opts.registry],
  });
  for (const result of ['ok', 'failed', 'limited']) logins.inc({ result }, 0);
  const notFake = dummyHash();

  app.decorateRequest('principal', undefined);
  // non-API answers (the dashboard's files, /metrics) get the API's error body too
  app.setErrorHandler(makeErrorHandler(rejectedCounter(opts.registry)));
  await app.register(cookie);
  await app.register(csrf, {
    sessionPlugin: '@fastify/cookie',
    cookieKey: csrfCookie,
    cookieOpts,
    // a token is good for its session only; the key lives as long as the process
    csrfOpts: { hmacKey: randomBytes(32) },
    getUserInfo: (req: FastifyRequest) => req.cookies[cookieName] ?? '',
    getToken: (req: FastifyRequest) => header(req, 'x-csrf-token'),
  });
  await app.register(rateLimit, { global: false });

  const sessionUser = (req: FastifyRequest): User | undefined => {
    const secret = req.cookies[cookieName];
    return secret ? store.auth.session(secret, opts.session) : undefined;
  };

  app.addHook('onRequest', async (req, reply) => {
    if (!hostAllowed(opts.hosts, req.headers.host)) {
      throw new PortcullisError(
        'MISDIRECTED_REQUEST',
        `this service does not answer to "${req.headers.host ?? ''}"; use its management address or a name in api.names`,
        { path: '/headers/host' },
      );
    }
    if (
      crossSite(
        { host: req.headers.host, secure: opts.secure },
        header(req, 'origin'),
        header(req, 'sec-fetch-site'),
      )
    ) {
      throw new PortcullisError('FORBIDDEN', 'requests from other sites are refused', {
        path: '/headers/origin',
      });
    }
    req.principal = authenticate(req);

    const url = req.routeOptions.url;
    if (url === undefined) return; // no such route: 404 as usual
    const inApi = url === prefix || url.startsWith(`${prefix}/`);
    if (url === '/metrics') {
      if (!req.principal && scrapers.has(req.ip)) {
        req.principal = { via: 'scrape', name: req.ip, role: 'viewer', people: [] };
      }
      requireRole(req, req.principal, 'GET', '/metrics');
      return;
    }
    if (!inApi) return; // the dashboard's files
    const route = url.slice(prefix.length) || '/';
    const schema = req.routeOptions.schema as OpenApiSchemaExtras | undefined;
    if (PUBLIC_API.has(`${req.method === 'HEAD' ? 'GET' : req.method} ${route}`) || schema?.public) return;
    if (route.startsWith('/auth/')) {
      if (!req.principal) throw unauthorized();
    } else {
      const scope = requireRole(req, req.principal, req.method, route);
      if (scope.kind !== 'none') scopes.set(req, scope);
    }
    if (req.principal?.via === 'session' && MUTATING.has(req.method)) await checkCsrf(req, reply);
  });

  // a parent's requests, once params and body are parsed
  const scopes = new WeakMap<FastifyRequest, Scope>();
  app.addHook('preHandler', async (req) => {
    const scope = scopes.get(req);
    const p = req.principal;
    if (!scope || !p) return;
    const mine = vmsOf(p, opts.policy.current().vms);
    const params = (req.params ?? {}) as Record<string, string | number | undefined>;
    const outside = (what: string): PortcullisError =>
      new PortcullisError('FORBIDDEN', `${what} is not one of the VMs ${p.name} looks after`, {
        path: '/params',
      });
    switch (scope.kind) {
      case 'vm':
        if (!mine.has(String(params.name))) throw outside(`VM "${String(params.name)}"`);
        return;
      case 'request': {
        const r = store.accessRequests.get(Number(params.id));
        if (r && !mine.has(r.vm)) throw outside(`the VM of access request ${r.id}`);
        return;
      }
      case 'schedule': {
        if (scope.existing) {
          const s = opts.policy.current().schedules.find((x) => x.name === params.name);
          if (s && !scheduleIsMine(s.vms, mine)) throw outside(`a VM of schedule "${s.name}"`);
        }
        if (scope.body) {
          const vms = (req.body as { vms?: unknown } | undefined)?.vms;
          if (!Array.isArray(vms) || !scheduleIsMine(vms.map(String), mine))
            throw outside('a VM of this schedule');
        }
        return;
      }
      case 'filter':
      case 'none':
        return;
    }
  });
  app.addHook('preSerialization', async (req, _reply, payload) => {
    const scope = scopes.get(req);
    if (scope?.kind !== 'filter' || !req.principal || !Array.isArray(payload)) return payload;
    return filterList(scope.list, payload, vmsOf(req.principal, opts.policy.current().vms));
  });

  function authenticate(req: FastifyRequest): Principal | undefined {
    const authz = header(req, 'authorization');
    if (authz !== undefined) {
      const m = /^Bearer\s+(\S+)$/i.exec(authz);
      const token = m?.[1];
      if (token !== undefined) {
        if (opts.configToken && sameSecret(token, opts.configToken)) {
          return { via: 'config-token', name: 'config', role: 'admin', people: [] };
        }
        const record = store.auth.verifyToken(token);
        if (record) return { via: 'token', name: record.name, role: record.role, people: record.people };
      }
      throw new PortcullisError(
        'UNAUTHORIZED',
        'this API token is not valid (unknown, revoked or expired); create one with: portcullis token create',
        { path: '/headers/authorization' },
      );
    }
    const user = sessionUser(req);
    return user && { via: 'session', name: user.name, role: user.role, people: user.people };
  }

  function requireRole(req: FastifyRequest, p: Principal | undefined, method: string, route: string): Scope {
    if (!p) throw unauthorized();
    const d = decide(p, method, route);
    if (!d.allow) {
      throw new PortcullisError(
        'FORBIDDEN',
        `${actorOf(p)} (${p.role}) may not ${method} ${req.url.split('?')[0]}: ${d.reason}`,
      );
    }
    return d.scope;
  }

  async function checkCsrf(req: FastifyRequest, reply: FastifyReply): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      // the plugin answers a bad token itself through reply.send: take its error instead
      const answer = {
        send: () =>
          reject(
            new PortcullisError(
              'FORBIDDEN',
              'this change needs the CSRF token of your session in X-CSRF-Token (GET /api/v1/auth/me gives it)',
              { path: '/headers/x-csrf-token' },
            ),
          ),
      };
      app.csrfProtection(req, Object.assign(Object.create(reply) as FastifyReply, answer), resolve);
    });
  }

  const who = (req: FastifyRequest, reply: FastifyReply, p: Principal) => {
    const vms = p.role === 'parent' ? [...vmsOf(p, opts.policy.current().vms)] : undefined;
    return {
      name: p.name,
      via: p.via,
      role: p.role,
      people: p.people,
      ...(vms ? { vms } : {}),
      ...(p.via === 'session'
        ? { csrfToken: reply.generateCsrf({ userInfo: req.cookies[cookieName] ?? '' }) }
        : {}),
    };
  };

  const Login = Type.Object(
    {
      user: Type.String({ minLength: 1, maxLength: 64 }),
      password: Type.String({ minLength: 1, maxLength: 1024 }),
    },
    { additionalProperties: false },
  );
  const tags = ['auth'];

  return async (api) => {
    api.post<{ Body: { user: string; password: string } }>(
      '/auth/login',
      {
        schema: {
          tags,
          summary: 'Log in: a session cookie and the CSRF token for changes',
          public: true,
          body: Login,
        } as object,
        onRequest: api.rateLimit({
          max: opts.loginsPerAddress ?? 10,
          timeWindow: windowMs,
          keyGenerator: (req) => req.ip,
          errorResponseBuilder: (_req, ctx) => {
            logins.inc({ result: 'limited' });
            return new PortcullisError(
              'RATE_LIMITED',
              `too many logins from this address; try again in ${ctx.after}`,
            );
          },
        }),
      },
      async (req, reply) => {
        const name = req.body.user.toLowerCase();
        const wait = perUser.retryAfter(name);
        if (wait > 0) {
          logins.inc({ result: 'limited' });
          void reply.header('retry-after', String(wait));
          throw new PortcullisError(
            'RATE_LIMITED',
            `too many failed logins for "${name}"; try again in ${wait} s`,
            { path: '/body/user' },
          );
        }
        const hash = store.auth.passwordHash(name);
        const ok = await verifyPassword(req.body.password, hash ?? (await notFake));
        if (!ok || hash === undefined) {
          perUser.fail(name);
          logins.inc({ result: 'failed' });
          opts.log.warn({ user: name, ip: req.ip }, 'failed login');
          throw new PortcullisError('UNAUTHORIZED', 'wrong user name or password', {
            path: '/body/password',
          });
        }
        perUser.reset(name);
        logins.inc({ result: 'ok' });
        const secret = store.auth.createSession(name, opts.session);
        store.record({ actor: `user:${name}`, action: 'auth.login', target: `user/${name}` });
        void reply.setCookie(cookieName, secret, {
          ...cookieOpts,
          maxAge: Math.floor(opts.session.absoluteMs / 1000),
        });
        // the CSRF token is bound to the session cookie just set
        req.cookies[cookieName] = secret;
        const user = store.auth.user(name)!;
        return who(req, reply, { via: 'session', name, role: user.role, people: user.people });
      },
    );

    api.get(
      '/auth/me',
      { schema: { tags, summary: 'Who am I: name, role, VMs, CSRF token' } as object },
      async (req, reply) => who(req, reply, req.principal!),
    );

    api.post(
      '/auth/logout',
      { schema: { tags, summary: 'End this session' } as object },
      async (req, reply) => {
        const secret = req.cookies[cookieName];
        if (secret) store.auth.endSession(secret);
        void reply.clearCookie(cookieName, cookieOpts);
        return reply.code(204).send();
      },
    );

    api.post(
      '/auth/logout-everywhere',
      { schema: { tags, summary: "End every session of this user (every browser's)" } as object },
      async (req, reply) => {
        const p = req.principal!;
        if (p.via !== 'session') {
          throw new PortcullisError(
            'REQUEST_INVALID',
            'only a logged-in user has sessions to end; revoke a token with: portcullis token revoke',
          );
        }
        const ended = store.auth.endSessions(p.name);
        store.record({
          actor: actorOf(p),
          action: 'auth.logout-everywhere',
          target: `user/${p.name}`,
          after: { ended },
        });
        void reply.clearCookie(cookieName, cookieOpts);
        return { ended };
      },
    );
  };
}

function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function unauthorized(): PortcullisError {
  return new PortcullisError(
    'UNAUTHORIZED',
    'log in (POST /api/v1/auth/login) or send an API token: Authorization: Bearer <token>',
    { path: '/headers/authorization' },
  );
}
