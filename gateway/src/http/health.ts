import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { doc, type ResourceOptions } from './route-helpers.js';
import { Health } from './schemas.js';

/** `/health`: whether the store answers, and how many VMs are protected. */
export const healthRoutes: FastifyPluginAsyncTypebox<ResourceOptions> = async (app, { deps }) => {
  app.get(
    '/health',
    {
      schema: doc(
        { tags: ['health'], summary: 'Health of the service', public: true },
        { response: { 200: Health, 503: Health } },
      ),
    },
    async (_req, reply) => {
      const storeOk = deps.store.ping();
      const vms = deps.policy.listVms();
      const body = {
        status: storeOk ? ('ok' as const) : ('degraded' as const),
        store: storeOk ? ('ok' as const) : ('failed' as const),
        vms: vms.length,
        quarantined: vms.filter((v) => v.quarantine).length,
      };
      return reply.code(storeOk ? 200 : 503).send(body);
    },
  );
};
