import { Type } from 'typebox';
import type { FastifyPluginAsync } from 'fastify';
import { PortcullisError } from '../errors.js';
import type { IpsService } from '../suricata/ips.js';
import type { Store } from '../store/store.js';

/**
 * The IPS: recent alerts, Suricata's state, rule reload through its command socket,
 * and the remote hosts the IPS blocked (with undo).
 */
export const ipsRoutes: FastifyPluginAsync<{ ips: IpsService | undefined; store: Store }> = async (
  app,
  opts,
) => {
  const ips = (): IpsService => {
    if (!opts.ips)
      throw new PortcullisError(
        'SURICATA_FAILED',
        'the IPS is not enabled in this service configuration (suricata.enabled)',
      );
    return opts.ips;
  };

  app.get<{ Querystring: { limit?: number; vm?: string } }>(
    '/alerts',
    {
      schema: {
        querystring: Type.Object({
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
          vm: Type.Optional(Type.String()),
        }),
      },
    },
    async (req) => opts.store.alerts.recent(req.query.limit ?? 100, req.query.vm),
  );

  app.get('/ips', async () => {
    const i = ips();
    const status = i.supervisor.status();
    const stats =
      status.status === 'running' ? await i.control.rulesetStats().catch(() => undefined) : undefined;
    return {
      suricata: status,
      ids: i.idsStatus() ?? null,
      rules: stats,
      blocks: i.blocks(),
      // whether a rule reload would yield to inspection (suricata/reload.ts)
      reloadPriority: i.reloadPriority(),
    };
  });

  // the inline Suricata's rules again, built at a low priority (suricata/reload.ts)
  app.post('/ips/reload', async () => ips().reloadInlineRules());

  app.get('/ips/blocks', async () => ips().blocks());

  app.delete<{ Params: { address: string } }>(
    '/ips/blocks/:address',
    { schema: { params: Type.Object({ address: Type.String({ minLength: 2, maxLength: 45 }) }) } },
    async (req, reply) => {
      const had = await ips().unblock(req.params.address);
      if (!had)
        throw new PortcullisError('NOT_FOUND', `${req.params.address} is not blocked by the IPS`, {
          path: '/params/address',
        });
      return reply.code(204).send();
    },
  );
};
