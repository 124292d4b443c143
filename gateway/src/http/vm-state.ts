import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import { PortcullisError } from '../errors.js';
import { effectiveProfiles } from '../policy/builtins.js';
import type { PolicyService } from '../control/policy-service.js';
import { scheduleActive } from '../policy/schedule.js';

export const VmState = Type.Object({
  vm: Type.String(),
  profile: Type.String({ description: 'the profile in force (quarantine while quarantined)' }),
  quarantined: Type.Boolean(),
  paused: Type.Boolean({ description: 'paused now (a pause without end, or one that has not ended)' }),
  internet: Type.Union([Type.Literal('open'), Type.Literal('deny'), Type.Literal('allowlist-only')], {
    description: 'internet access now, schedules applied',
  }),
  schedules: Type.Array(Type.Object({ name: Type.String(), mode: Type.String(), active: Type.Boolean() })),
});

/**
 * `GET /vms/:name/state`: what is in force for a VM right now — the same schedule
 * math the kernel rules were compiled from, evaluated at the service's clock.
 */
export const vmStateRoutes: FastifyPluginAsync<{ policy: PolicyService; now?: () => Date }> = async (
  app,
  opts,
) => {
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
      const at = opts.now?.() ?? new Date();
      const profile = vm.quarantine ? 'quarantine' : vm.profile;
      const schedules = policy.schedules
        .filter((s) => s.vms.includes(vm.name))
        .map((s) => ({ name: s.name, mode: s.mode, active: scheduleActive(s, at) }));
      const paused =
        vm.pause !== undefined && (vm.pause.until === undefined || Date.parse(vm.pause.until) > at.getTime());
      let internet = effectiveProfiles(policy.profiles).get(profile)?.internet ?? 'deny';
      // schedules for some services only leave the VM's own access as it is
      const wholeVm = policy.schedules.filter(
        (s) => s.vms.includes(vm.name) && !s.services?.length && scheduleActive(s, at),
      );
      if (wholeVm.some((s) => s.mode === 'deny') || vm.quarantine || paused) internet = 'deny';
      else if (wholeVm.some((s) => s.mode === 'allowlist-only') && internet === 'open')
        internet = 'allowlist-only';
      return { vm: vm.name, profile, quarantined: vm.quarantine !== undefined, paused, internet, schedules };
    },
  );
};
