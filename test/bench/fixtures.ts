import type { Policy } from '../../gateway/src/policy/model.js';
import { guestPort, type LabTopology } from '../../appliance/lab/topology.js';

/** A deterministic pseudo-random generator (mulberry32), so every run loads the same sets. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `count` deny entries, mixed prefix lengths (/32, /28, /24, /20), drawn from
 * 11.0.0.0–126.255.255.255 so the lab's own addresses are never in them.
 */
export function denyEntries(count: number, seed = 1): string[] {
  const next = rng(seed);
  const lens = [32, 32, 32, 28, 24, 24, 20];
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const len = lens[Math.floor(next() * lens.length)]!;
    const addr = (11 << 24) + Math.floor(next() * (116 << 24));
    const mask = len === 32 ? 0xffffffff : (0xffffffff << (32 - len)) >>> 0;
    const n = (addr & mask) >>> 0;
    out.push(`${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}${len === 32 ? '' : `/${len}`}`);
  }
  return out;
}

/**
 * The lab's VMs plus `extra` registered VMs (no traffic), each on a port of its own as
 * every VM is in production (the extra ports do not exist: their VMs send nothing), and
 * a global deny list.
 */
export function benchPolicy(t: LabTopology, extra: number, deny: string[]): Policy {
  const vms: Policy['vms'] = t.guests.map((g) => ({
    name: g.name,
    port: guestPort(g),
    mac: g.mac,
    ipv4: g.ipv4,
    profile: g.profile,
  }));
  for (let i = 0; vms.length < t.guests.length + extra; i++) {
    vms.push({
      name: `vm${i}`,
      port: `vmp${i}`,
      mac: `52:54:00:01:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`,
      ipv4: `10.20.${1 + Math.floor(i / 200)}.${(i % 200) + 20}`,
      profile: i % 2 === 0 ? 'internet-only' : 'kid',
      rules: [
        {
          id: `b${i}a`,
          action: 'drop',
          to: { cidr: `198.18.${i % 256}.0/24` },
          proto: 'tcp',
          ports: ['25', '6660-6669'],
        },
        { id: `b${i}b`, action: 'reject', to: { domain: `ads${i}.example.test` } },
      ],
    });
  }
  return {
    vms,
    profiles: [],
    schedules: [],
    vpnEndpoints: [t.internet.vpn],
    updateServers: [t.internet.update],
    deny,
    ipv6: false,
  };
}
