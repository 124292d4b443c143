import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { Rule } from '../policy/model.js';
import type { RuleOwner } from '../control/policy-service.js';
import { doc, mutationContext, type ResourceOptions } from './route-helpers.js';
import { NameParams, RuleParams, RuleQuery } from './schemas.js';

/** `/vms/:name/rules` and `/profiles/:name/rules`: ordered rules, addressed by id. */
export const ruleRoutes: FastifyPluginAsyncTypebox<ResourceOptions> = async (app, { deps }) => {
  const { policy } = deps;
  const owners: { base: string; kind: string; owner: (name: string) => RuleOwner }[] = [
    { base: '/vms/:name/rules', kind: 'VM', owner: (name) => ({ vm: name }) },
    { base: '/profiles/:name/rules', kind: 'custom profile', owner: (name) => ({ profile: name }) },
  ];

  for (const { base, kind, owner } of owners) {
    const tags = ['rules'];
    app.get(
      base,
      {
        schema: doc(
          { tags, summary: `List a ${kind}'s rules, in order` },
          { params: NameParams, response: { 200: Type.Array(Rule) } },
        ),
      },
      async (req) => policy.listRules(owner(req.params.name)),
    );

    app.get(
      `${base}/:id`,
      {
        schema: doc(
          { tags, summary: `Show one of a ${kind}'s rules` },
          { params: RuleParams, response: { 200: Rule } },
        ),
      },
      async (req) => policy.getRule(owner(req.params.name), req.params.id),
    );

    app.post(
      base,
      {
        schema: doc(
          {
            tags,
            summary: `Add a rule to a ${kind}`,
            description: 'A rule without an id gets one. The first rule that matches decides.',
          },
          { params: NameParams, querystring: RuleQuery, body: Rule, response: { 201: Rule } },
        ),
      },
      async (req, reply) =>
        reply
          .code(201)
          .send(
            await policy.addRule(owner(req.params.name), req.body, mutationContext(req), req.query.position),
          ),
    );

    app.delete(
      `${base}/:id`,
      {
        schema: doc(
          { tags, summary: `Remove a rule from a ${kind}` },
          { params: RuleParams, response: { 204: Type.Null() } },
        ),
      },
      async (req, reply) => {
        await policy.removeRule(owner(req.params.name), req.params.id, mutationContext(req));
        return reply.code(204).send(null);
      },
    );
  }
};
