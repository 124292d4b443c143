import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { doc, type ResourceOptions } from './route-helpers.js';
import { AuditPage, AuditQuery } from './schemas.js';

/** `/audit`: the audit log, newest first, paged by `before`. */
export const auditRoutes: FastifyPluginAsyncTypebox<ResourceOptions> = async (app, { deps }) => {
  app.get(
    '/audit',
    {
      schema: doc(
        {
          tags: ['audit'],
          summary: 'Read the audit log',
          description: 'Newest first; pass nextBefore as before for the next page.',
        },
        { querystring: AuditQuery, response: { 200: AuditPage } },
      ),
    },
    async (req) => deps.store.audit.list(req.query),
  );
};
