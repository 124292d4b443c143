import { deepFreeze } from './fingerprint.js';
import type { Profile } from './model.js';

/** Profiles every appliance has. A custom profile of the same name replaces one. Deep-frozen. */
export const BUILTIN_PROFILES: readonly Profile[] = deepFreeze([
  {
    name: 'open',
    description: 'internet and every rule allows; no IPS',
    internet: 'open',
    rules: [],
    reach: [],
    ips: { mode: 'off', failure: 'fail-open' },
  },
  {
    name: 'internet-only',
    description: 'internet only: no LAN, no other VMs',
    internet: 'open',
    rules: [],
    reach: [],
    ips: { mode: 'ids', failure: 'fail-open' },
  },
  {
    name: 'work',
    description: 'internet-only plus the corporate VPN endpoints',
    internet: 'open',
    rules: [],
    reach: [],
    vpn: true,
    ips: { mode: 'ids', failure: 'fail-open' },
  },
  {
    name: 'kid',
    description:
      'filtered internet for a child: adult, gambling, dating and malware blocked, SafeSearch, no way around the filter; IPS inline, fail-closed',
    internet: 'open',
    rules: [],
    reach: [],
    ips: { mode: 'ips', failure: 'fail-closed' },
    dns: {
      categories: ['adult', 'gambling', 'dating', 'malware'],
      safeSearch: true,
      youtube: 'strict',
      blockDoh: true,
    },
    parental: { closeBypass: true },
  },
  {
    name: 'quarantine',
    description: 'DNS and update servers only',
    internet: 'deny',
    rules: [],
    reach: [],
    isolated: true,
    ips: { mode: 'off', failure: 'fail-open' },
  },
]);

/** The profiles in force: built-ins overlaid by custom ones of the same name. */
export function effectiveProfiles(custom: readonly Profile[]): Map<string, Profile> {
  const out = new Map<string, Profile>();
  for (const p of BUILTIN_PROFILES) out.set(p.name, p);
  for (const p of custom) out.set(p.name, p);
  return out;
}
