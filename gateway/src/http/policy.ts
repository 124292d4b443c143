import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { PortcullisError, isPortcullisError } from '../errors.js';
import { Policy } from '../policy/model.js';
import { parsePolicyYaml, policyToYaml } from '../policy/yaml.js';
import { doc, mutationContext, type ResourceOptions } from './route-helpers.js';
import { PolicyQuery, Settings, SettingsPatch } from './schemas.js';

/** Content types a policy file may come in. */
export const YAML_TYPES = ['application/yaml', 'application/x-yaml', 'text/yaml'];

/** The policy's schema; the reply is that JSON, or the same as YAML text. */
const PolicyOrYaml = Type.Unsafe<Policy | string>(Policy);

/** Options of the policy routes. */
export interface PolicyRouteOptions extends ResourceOptions {
  /** Largest policy document accepted, in bytes. */
  readonly bodyLimit: number;
}

/** `/policy` (the whole policy as JSON or YAML, config as code) and `/settings`. */
export const policyRoutes: FastifyPluginAsyncTypebox<PolicyRouteOptions> = async (
  app,
  { deps, bodyLimit },
) => {
  const { policy } = deps;

  app.get(
    '/policy',
    {
      schema: doc(
        {
          tags: ['policy'],
          summary: 'Export the whole policy',
          description: 'JSON, or YAML with ?format=yaml or Accept: application/yaml.',
          produces: ['application/yaml'],
        },
        { querystring: PolicyQuery, response: { 200: PolicyOrYaml } },
      ),
    },
    async (req, reply) => {
      const yaml =
        req.query.format === 'yaml' ||
        (req.query.format === undefined && /\byaml\b/.test(req.headers.accept ?? ''));
      if (!yaml) return policy.current();
      const text = policyToYaml(
        policy.current(),
        `Portcullis policy, exported ${new Date(deps.now()).toISOString()}`,
      );
      return reply.type('application/yaml; charset=utf-8').send(text);
    },
  );

  app.put(
    '/policy',
    {
      bodyLimit,
      // the body is checked in full below (every problem, with line numbers for YAML)
      validatorCompiler: () => (data: unknown) => ({ value: data }),
      schema: doc(
        {
          tags: ['policy'],
          summary: 'Import a whole policy',
          description:
            'Replaces the whole policy in one change, or rejects it whole. JSON, or YAML with Content-Type: application/yaml.',
          consumes: YAML_TYPES,
        },
        { body: Policy, response: { 200: Policy } },
      ),
    },
    async (req) => {
      const body: unknown = req.body;
      try {
        const next = typeof body === 'string' ? parsePolicyYaml(body) : (body as Policy);
        return await policy.importPolicy(next, mutationContext(req));
      } catch (err) {
        // paths in a policy document are paths in the request body
        if (isPortcullisError(err, 'POLICY_INVALID') && err.context?.subject === undefined) {
          throw new PortcullisError(err.code, err.message, {
            cause: err.cause,
            path: err.path,
            context: { ...err.context, subject: '' },
          });
        }
        throw err;
      }
    },
  );

  app.get(
    '/settings',
    {
      schema: doc(
        { tags: ['policy'], summary: 'Show the policy-wide settings' },
        { response: { 200: Settings } },
      ),
    },
    async () => policy.getSettings(),
  );

  app.patch(
    '/settings',
    {
      schema: doc(
        {
          tags: ['policy'],
          summary: 'Change policy-wide settings',
          description: 'deny: null removes the global deny list.',
        },
        { body: SettingsPatch, response: { 200: Settings } },
      ),
    },
    async (req) => policy.setSettings(req.body, mutationContext(req)),
  );
};
