import { Type } from 'typebox';
import type { FastifyPluginAsync } from 'fastify';
import { PortcullisError } from '../errors.js';
import type { PolicyService } from '../control/policy-service.js';
import { vmInForce } from '../policy/in-force.js';
import { systemClock, type Clock } from '../clock.js';

export const VmState = Type.Object({
  vm: Type.String(),
  profile: Type.String({ description: 'the profile in force (quarantine while quarantined)' }),
  quarantined: Type.Boolean(),
  paused: Type.Boolean({ description: 'paused now (a pause without end, or one that has not ended)' }),
  budgetSpentUntil: Type.Optional(
    Type.String({
      format: 'date-time',
      description: "set while today's time budget is spent: when the internet comes back (the daily reset)",
    }),
  ),
  internet: Type.Union([Type.Literal('open'), Type.Literal('deny'), Type.Literal('allowlist-only')], {
    description: 'internet access now: schedules, pause, spent budget and quarantine applied',
  }),
  schedules: Type.Array(Type.Object({ name: Type.String(), mode: Type.String(), active: Type.Boolean() })),
});

/** Options of `vmStateRoutes`. */
export interface VmStateRoutesOptions {
  /** Where the policy in force comes from. */
  readonly policy: Pick<PolicyService, 'current'>;
  /** The clock; default `() => new Date()`. */
  readonly now?: Clock;
  /**
   * VMs whose daily time budget is spent, with the instant it comes back
   * (`BudgetController.blocked()`); default: none.
   */
  readonly budgetBlocked?: () => ReadonlyMap<string, Date>;
}

/**
 * `GET /vms/:name/state`: what is in force for a VM right now (`vmInForce`) — the same
 * answer the kernel rules, the DNS filter and the block page come from, evaluated at
 * the service's clock.
 */
export const vmStateRoutes: FastifyPluginAsync<VmStateRoutesOptions> = async (app, opts) => {
  app.get<{ Params: { name: string } }>(
    '/vms/:name/state',
    { schema: { params: Type.Object({ name: Type.String() }), response: { 200: VmState } } },
    async (req) => {
      const policy = opts.policy.current();
      const vm = policy.vms.find((v) => v.name === req.params.name);
      if (!vm)
        throw new PortcullisError('VM_NOT_FOUND', `no VM named "${req.params.name}"`, {
          path: '/params/name',
        });
      const at = new Date((opts.now ?? systemClock)());
      const budgetBlocked = opts.budgetBlocked?.();
      const s = vmInForce(policy, vm, at, budgetBlocked ? { budgetBlocked } : {});
      return {
        vm: vm.name,
        profile: s.profile.name,
        quarantined: s.quarantine !== undefined,
        paused: s.pause !== undefined,
        ...(s.budgetSpentUntil ? { budgetSpentUntil: s.budgetSpentUntil.toISOString() } : {}),
        internet: s.internet,
        schedules: s.schedules.map(({ name, mode, active }) => ({ name, mode, active })),
      };
    },
  );
};
