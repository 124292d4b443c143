import type { Policy } from '../policy/model.js';

/** Test data shared by the store, policy and HTTP tests. Not used by the service. */

/** A policy that uses every table and every optional field. */
export function makePolicy(overrides: Partial<Policy> = {}): Policy {
  return {
    vms: [
      {
        name: 'kid',
        mac: '52:54:00:00:00:01',
        ipv4: '10.20.0.11',
        ipv6: 'fd00::11',
        profile: 'kid',
        owner: 'alice',
        notes: 'the kid VM',
        rules: [
          {
            id: 'r1',
            action: 'drop',
            to: { cidr: '203.0.113.0/24' },
            proto: 'tcp',
            ports: ['80', '443'],
            expires: '2030-01-01T00:00:00Z',
          },
          { id: 'r2', action: 'accept', to: { domain: 'example.org' }, comment: 'homework' },
        ],
      },
      {
        name: 'work',
        mac: '52:54:00:00:00:02',
        ipv4: '10.20.0.12',
        profile: 'office',
        quarantine: { reason: 'ET MALWARE beacon', since: '2026-01-01T10:00:00Z' },
      },
    ],
    profiles: [
      {
        name: 'office',
        description: 'office work',
        internet: 'allowlist-only',
        rules: [{ id: 'p1', action: 'accept', to: { vm: 'kid' }, proto: 'icmp', icmpType: 'echo-request' }],
        reach: ['kid'],
        vpn: true,
        isolated: false,
        ips: { mode: 'ids', failure: 'fail-open' },
        allowDomains: ['corp.example', '*.corp.example'],
        dns: { safeSearch: true, categories: ['gambling'], blockDoh: true },
      },
    ],
    schedules: [
      {
        name: 'bedtime',
        vms: ['kid'],
        timezone: 'Europe/Berlin',
        windows: [{ days: ['mon', 'tue'], start: '21:00', end: '07:00' }],
        mode: 'deny',
        enabled: true,
      },
    ],
    vpnEndpoints: ['198.51.100.7'],
    updateServers: ['192.0.2.0/24'],
    deny: ['203.0.113.66'],
    ipv6: true,
    ...overrides,
  };
}
