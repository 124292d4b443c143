import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { PortcullisError } from '../errors.js';
import { AccessRequest } from '../store/types.js';
import { doc, mutationContext, type ResourceOptions } from './route-helpers.js';
import { AccessRequestCreate, AccessRequestQuery, ApproveBody, DenyBody, IdParams } from './schemas.js';

const tags = ['access-requests'];

/** How many requests one VM may have pending; more are refused until a parent decides. */
export const MAX_PENDING_PER_VM = 20;

/**
 * `/access-requests`: a guest asks (from the block page) to reach a blocked domain; a
 * parent approves for some minutes or always, or denies. An approval adds an `accept`
 * rule for the domain to the VM, expiring with the approval.
 *
 * Creating a request needs no API token (the block page has none): it only records a
 * pending request, for a VM that exists, at most MAX_PENDING_PER_VM per VM.
 */
export const accessRequestRoutes: FastifyPluginAsyncTypebox<ResourceOptions> = async (app, { deps }) => {
  const { policy, store } = deps;

  app.get(
    '/access-requests',
    {
      schema: doc(
        { tags, summary: 'List access requests, newest first' },
        { querystring: AccessRequestQuery, response: { 200: Type.Array(AccessRequest) } },
      ),
    },
    async (req) => store.accessRequests.list(req.query),
  );

  app.get(
    '/access-requests/:id',
    {
      schema: doc(
        { tags, summary: 'Show an access request' },
        { params: IdParams, response: { 200: AccessRequest } },
      ),
    },
    async (req) => getRequest(req.params.id),
  );

  app.post(
    '/access-requests',
    {
      schema: doc(
        {
          tags,
          summary: 'Ask for access (block page)',
          description:
            'Give the domain or the blocked URL. Needs no token. The same pending request again answers the existing one.',
          public: true,
        },
        { body: AccessRequestCreate, response: { 200: AccessRequest, 201: AccessRequest } },
      ),
    },
    async (req, reply) => {
      const { vm, url, reason } = req.body;
      const domain = req.body.domain ?? hostOf(url);
      policy.getVm(vm);
      const pending = store.accessRequests.pendingFor(vm);
      const same = pending.find((r) => r.domain === domain);
      if (same) return reply.code(200).send(same);
      if (pending.length >= MAX_PENDING_PER_VM) {
        throw new PortcullisError(
          'CONFLICT',
          `VM "${vm}" has ${pending.length} requests pending; wait for a decision`,
          { path: '/body/vm' },
        );
      }
      return reply.code(201).send(store.accessRequests.create({ vm, domain, url, reason }, `guest:${vm}`));
    },
  );

  app.post(
    '/access-requests/:id/approve',
    {
      schema: doc(
        {
          tags,
          summary: 'Approve an access request',
          description:
            '{minutes: n} for a while, or {always: true}. Adds an accept rule for the domain to the VM.',
        },
        { params: IdParams, body: ApproveBody, response: { 200: AccessRequest } },
      ),
    },
    async (req) => {
      const ctx = mutationContext(req);
      const request = getRequest(req.params.id);
      if (request.status !== 'pending') {
        throw new PortcullisError('CONFLICT', `access request ${request.id} was already ${request.status}`, {
          path: '/params/id',
        });
      }
      const { minutes } = req.body;
      const until = minutes === undefined ? undefined : new Date(deps.now() + minutes * 60_000).toISOString();
      const rule = await policy.addRule(
        { vm: request.vm },
        {
          action: 'accept',
          to: { domain: request.domain },
          ...(until === undefined ? {} : { expires: until }),
          comment: `access request ${request.id}`,
        },
        { ...ctx, reason: ctx.reason ?? `access request ${request.id}` },
        0,
      );
      try {
        return store.accessRequests.decide(
          request.id,
          { status: 'approved', decidedBy: ctx.actor, until, ruleId: rule.id },
          ctx.reason,
        );
      } catch (err) {
        // decided meanwhile by someone else: take the rule back out
        await policy.removeRule({ vm: request.vm }, rule.id!, ctx).catch(() => undefined);
        throw err;
      }
    },
  );

  app.post(
    '/access-requests/:id/deny',
    {
      schema: doc(
        { tags, summary: 'Deny an access request' },
        { params: IdParams, body: DenyBody, response: { 200: AccessRequest } },
      ),
    },
    async (req) => {
      const ctx = mutationContext(req, req.body.reason);
      return store.accessRequests.decide(
        getRequest(req.params.id).id,
        { status: 'denied', decidedBy: ctx.actor },
        ctx.reason,
      );
    },
  );

  function getRequest(id: number): AccessRequest {
    const r = store.accessRequests.get(id);
    if (!r)
      throw new PortcullisError('ACCESS_REQUEST_NOT_FOUND', `no access request ${id}`, {
        path: '/params/id',
      });
    return r;
  }
};

/** The host of a blocked URL, as a domain. */
function hostOf(url: string | undefined): string {
  if (url === undefined) {
    throw new PortcullisError('REQUEST_INVALID', 'give the domain or the URL that was blocked', {
      path: '/body/domain',
    });
  }
  let host: string;
  try {
    host = new URL(url).hostname;
  } catch {
    throw new PortcullisError('REQUEST_INVALID', `"${url}" is not a URL`, { path: '/body/url' });
  }
  if (
    /^[0-9.]+$/.test(host) ||
    !/^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?)*$/.test(host)
  ) {
    throw new PortcullisError(
      'REQUEST_INVALID',
      `"${url}" has no domain name (an address is not something to approve)`,
      { path: '/body/url' },
    );
  }
  return host;
}
