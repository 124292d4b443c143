import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { PortcullisError } from '../errors.js';
import type { AccessRequestIntake } from '../parental/access-requests.js';
import { AccessRequest } from '../store/types.js';
import { doc, mutationContext, type ResourceOptions } from './route-helpers.js';
import { AccessRequestCreate, AccessRequestQuery, ApproveBody, DenyBody, IdParams } from './schemas.js';

const tags = ['access-requests'];

/**
 * `/access-requests`: a guest asks (from the block page) to reach a blocked domain; a
 * parent approves for some minutes or always, or denies. An approval adds an `accept`
 * rule for the domain to the VM, expiring with the approval.
 *
 * Creating a request needs no API token: it only records a pending request, for a VM
 * that exists, through the same rules as the block page (`AccessRequestIntake`).
 */
export const accessRequestRoutes: FastifyPluginAsyncTypebox<
  ResourceOptions & { readonly intake: AccessRequestIntake }
> = async (app, { deps, intake }) => {
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
      const { vm, domain, url, reason } = req.body;
      policy.getVm(vm);
      const r = intake.submit(vm, { domain, url, reason }, `guest:${vm}`);
      return reply.code(r.created ? 201 : 200).send(r.request);
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
