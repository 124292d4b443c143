import type { Policy, Vm } from './model.js';

/** Test data shared by the compiler, applier and fingerprint tests. Not used by the service. */

/** The kid VM (profile `kid`, one drop rule) and the work VM; `extra` VMs after them. */
export function kidAndWork(extra: readonly Vm[] = [], overrides: Partial<Policy> = {}): Policy {
  return {
    vms: [
      {
        name: 'kid',
        mac: '52:54:00:00:00:0a',
        ipv4: '10.20.0.10',
        profile: 'kid',
        rules: [{ id: 'a', action: 'drop', to: { cidr: '198.51.100.0/24' } }],
      },
      { name: 'work', mac: '52:54:00:00:00:0b', ipv4: '10.20.0.11', profile: 'work' },
      ...extra,
    ],
    profiles: [],
    schedules: [],
    vpnEndpoints: [],
    updateServers: [],
    ipv6: false,
    ...overrides,
  };
}
