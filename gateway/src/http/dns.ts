import { Type } from 'typebox';
import type { FastifyPluginAsync } from 'fastify';
import type { ClientPolicy, Verdict } from '../dns/model.js';
import type { QueryLogEntry } from '../dns/query-log.js';
import { PortcullisError } from '../errors.js';

/** What the routes need of the DNS filter. */
export interface DnsQueries {
  queryLog(client: string, options?: { limit?: number }): QueryLogEntry[];
  verdict(name: string, policy: ClientPolicy): Verdict;
}

export interface DnsRoutesOptions {
  readonly dns: DnsQueries;
  /** The DNS policy in force for a VM now (schedules, pause and budget applied); undefined for an unknown VM. */
  readonly client: (vm: string) => ClientPolicy | undefined;
}

const Params = Type.Object({ name: Type.String({ pattern: '^[a-z][a-z0-9-]{0,30}$' }) });
const Domain = Type.String({
  minLength: 1,
  maxLength: 253,
  pattern: '^[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\\.[A-Za-z0-9_-]{1,63})*\\.?$',
  description: 'a host name, e.g. www.example.com',
});

const Reason = Type.Object({
  kind: Type.String({
    description:
      'category, service, custom, allowlist, safesearch, canary, private-relay, ddr, doh or paused',
  }),
  list: Type.Optional(Type.String({ description: 'the list that matched' })),
  entry: Type.Optional(
    Type.String({ description: 'the listed name that matched (the name or a parent domain)' }),
  ),
});

const Action = Type.String({
  description: 'allow, block, rewrite, nxdomain, nodata, refused, servfail, formerr or notimp',
});

export const QueryLogResponse = Type.Object({
  vm: Type.String(),
  entries: Type.Array(
    Type.Object({
      time: Type.String({ format: 'date-time' }),
      name: Type.String(),
      type: Type.String({ description: 'query type: A, AAAA, HTTPS, …' }),
      action: Action,
      reason: Type.Optional(Reason),
      answers: Type.Array(Type.String(), { description: 'addresses, CNAME target, or NXDOMAIN/NODATA' }),
      upstreamMs: Type.Optional(Type.Number({ description: 'time upstream took, when asked there' })),
      cached: Type.Boolean(),
    }),
    { description: 'newest first' },
  ),
});

export const DnsCheckResponse = Type.Object({
  vm: Type.String(),
  name: Type.String(),
  action: Action,
  reason: Type.Optional(Reason),
  target: Type.Optional(Type.String({ description: 'for rewrite: the SafeSearch name answered instead' })),
});

/**
 * The DNS filter for the parent: a VM's query log (what was asked, answered, blocked
 * and why) and "would this name be blocked for this VM now, and why".
 */
export const dnsRoutes: FastifyPluginAsync<DnsRoutesOptions> = async (app, opts) => {
  const policyOf = (vm: string): ClientPolicy => {
    const p = opts.client(vm);
    if (!p) throw new PortcullisError('VM_NOT_FOUND', `no VM named "${vm}"`, { path: '/params/name' });
    return p;
  };

  app.get<{ Params: { name: string }; Querystring: { limit?: number } }>(
    '/vms/:name/queries',
    {
      schema: {
        params: Params,
        querystring: Type.Object(
          {
            limit: Type.Optional(
              Type.Integer({ minimum: 1, maximum: 1000, default: 100, description: 'most entries returned' }),
            ),
          },
          { additionalProperties: false },
        ),
        response: { 200: QueryLogResponse },
      },
    },
    async (req) => {
      const policy = policyOf(req.params.name);
      const entries = opts.dns.queryLog(policy.client, { limit: req.query.limit ?? 100 }).map((e) => ({
        time: new Date(e.time).toISOString(),
        name: e.name,
        type: e.type,
        action: e.action,
        ...(e.reason ? { reason: e.reason } : {}),
        answers: [...e.answers],
        ...(e.upstreamMs === undefined ? {} : { upstreamMs: Math.round(e.upstreamMs * 10) / 10 }),
        cached: e.cached,
      }));
      return { vm: req.params.name, entries };
    },
  );

  app.get<{ Params: { name: string }; Querystring: { name: string } }>(
    '/vms/:name/dns-check',
    {
      schema: {
        params: Params,
        querystring: Type.Object({ name: Domain }, { additionalProperties: false }),
        response: { 200: DnsCheckResponse },
      },
    },
    async (req) => {
      const policy = policyOf(req.params.name);
      const name = req.query.name.toLowerCase().replace(/\.$/, '');
      const v = opts.dns.verdict(name, policy);
      return {
        vm: req.params.name,
        name,
        action: v.action,
        ...(v.reason ? { reason: v.reason } : {}),
        ...(v.target ? { target: v.target } : {}),
      };
    },
  );
};
