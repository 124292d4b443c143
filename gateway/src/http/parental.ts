import { Type } from 'typebox';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { actorOf } from '../auth/access.js';
import type { DhcpServer } from '../dhcp/dnsmasq.js';
import { PortcullisError } from '../errors.js';
import type { BudgetController } from '../parental/controller.js';
import type { Vm } from '../policy/model.js';
import { MAX_PAUSE_MINUTES, type PolicyService } from '../control/policy-service.js';

export interface ParentalRoutesOptions {
  /** The policy in force, and the pause buttons. */
  readonly policy: Pick<PolicyService, 'current' | 'pause' | 'resume'>;
  readonly budgets: BudgetController;
  readonly dhcp: DhcpServer;
}

const Name = Type.Object({ name: Type.String({ pattern: '^[a-z][a-z0-9-]{0,30}$' }) });

/**
 * The parent's buttons: pause a VM's internet now (for a while, or until resumed),
 * see and extend today's time budget, and see the unknown devices waiting to be
 * assigned.
 */
export const parentalRoutes: FastifyPluginAsync<ParentalRoutesOptions> = async (app, opts) => {
  const actor = (req: FastifyRequest): string =>
    req.principal ? actorOf(req.principal) : `api:${headerName(req.headers['x-portcullis-actor'])}`;
  const findVm = (name: string): Vm => {
    const vm = opts.policy.current().vms.find((v) => v.name === name);
    if (!vm) throw new PortcullisError('VM_NOT_FOUND', `no VM named "${name}"`, { path: '/params/name' });
    return vm;
  };

  app.post<{ Params: { name: string }; Body: { minutes?: number; reason?: string } }>(
    '/vms/:name/pause',
    {
      schema: {
        params: Name,
        body: Type.Object(
          {
            minutes: Type.Optional(
              Type.Integer({
                minimum: 1,
                maximum: MAX_PAUSE_MINUTES,
                description: 'how long; absent: until resumed',
              }),
            ),
            reason: Type.Optional(Type.String({ maxLength: 200 })),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (req) => {
      const vm = await opts.policy.pause(
        req.params.name,
        { minutes: req.body?.minutes, reason: req.body?.reason },
        { actor: actor(req) },
      );
      return { vm: vm.name, pause: vm.pause };
    },
  );

  app.delete<{ Params: { name: string } }>('/vms/:name/pause', { schema: { params: Name } }, async (req) => {
    const vm = await opts.policy.resume(req.params.name, { actor: actor(req) });
    return { vm: vm.name, paused: false };
  });

  app.get<{ Params: { name: string } }>('/vms/:name/budget', { schema: { params: Name } }, async (req) => {
    const vm = findVm(req.params.name);
    const usage = opts.budgets.usage(vm);
    if (!usage)
      throw new PortcullisError(
        'NOT_FOUND',
        `VM "${vm.name}" has no daily time budget; set parental.dailyMinutes on its profile`,
        { path: '/params/name' },
      );
    return usage;
  });

  app.post<{ Params: { name: string }; Body: { minutes: number } }>(
    '/vms/:name/budget/grant',
    {
      schema: {
        params: Name,
        body: Type.Object(
          { minutes: Type.Integer({ minimum: 1, maximum: 1440 }) },
          { additionalProperties: false },
        ),
      },
    },
    async (req) => {
      const vm = findVm(req.params.name);
      const usage = await opts.budgets.grant(vm, req.body.minutes);
      if (!usage)
        throw new PortcullisError(
          'NOT_FOUND',
          `VM "${vm.name}" has no daily time budget; set parental.dailyMinutes on its profile`,
          { path: '/params/name' },
        );
      return usage;
    },
  );

  app.get('/devices/unassigned', async () => {
    const known = new Set(opts.policy.current().vms.map((v) => v.mac.toLowerCase()));
    return opts.dhcp.unassignedLeases(known);
  });
};

/** The claimed name of an API without authentication (tests): `anonymous` when none. */
function headerName(h: unknown): string {
  return typeof h === 'string' && h ? h : 'anonymous';
}
