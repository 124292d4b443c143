import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALT_RESOLVER_ANSWER } from '../../appliance/lab/builder.js';
import {
  api,
  counter,
  curl,
  down,
  download,
  guest,
  inNs,
  internetRequests,
  mustNs,
  nftTable,
  restartService,
  servicePid,
  sleep,
  topology,
  up,
} from './harness.js';

/**
 * The foundation, end to end: real namespaces, the real service in secvm, real
 * nftables, real traffic. Each `it` names what the gate must hold.
 */
const web = topology.internet.web;
const wanAddress = topology.wan.secvm.split('/')[0]!;
const mgmt = topology.mgmt.secvm.split('/')[0]!;

beforeAll(async () => {
  await up();
});

afterAll(async () => {
  await down();
});

async function reachesInternet(ns: string): Promise<boolean> {
  return (await curl(ns, `http://${web}/`, [], 3)).ok;
}

/** The checks that must hold whether or not the service runs. */
async function enforcementHolds(): Promise<void> {
  expect(await reachesInternet('kid')).toBe(true);
  expect((await curl('kid', `http://${guest('work').ipv4}/`, [], 2)).ok).toBe(false);
  expect((await curl('kid', `https://${mgmt}:${topology.api.port}/api/v1/health`, [], 2)).ok).toBe(false);
  const ping = await inNs('kid', ['ping', '-c', '1', '-W', '1', guest('work').ipv4]);
  expect(ping.code).not.toBe(0);
}

describe('the baseline gateway', () => {
  it('gives every guest its address by DHCP, with the appliance as router and resolver', async () => {
    for (const g of topology.guests) {
      const addr = await mustNs(g.name, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
      expect(addr).toContain(`${g.ipv4}/24`);
      const route = await mustNs(g.name, ['ip', 'route', 'show', 'default']);
      expect(route).toContain(`via ${topology.lan.gateway}`);
      const resolv = await mustNs(g.name, ['cat', '/etc/resolv.conf']);
      expect(resolv).toContain(`nameserver ${topology.lan.gateway}`);
    }
  });

  it('lets kid, work and browse reach the internet over HTTP and HTTPS, masqueraded to the wan address', async () => {
    for (const g of topology.guests) {
      for (const scheme of ['http', 'https']) {
        const r = await curl(g.name, `${scheme}://${web}/`);
        expect(r.ok, `${g.name} ${scheme}`).toBe(true);
        const body = JSON.parse(r.body) as { client: string; scheme: string };
        expect(body.client).toBe(wanAddress);
        expect(body.scheme).toBe(scheme);
      }
    }
  });

  it('keeps kid from work and browse: not directly over the bridge, not through the gateway', async () => {
    const before = await counter('guest_to_guest_dropped');
    // through the gateway (proxy ARP answers for the other guests)
    for (const other of ['work', 'browse']) {
      expect((await curl('kid', `http://${guest(other).ipv4}/`, [], 2)).ok).toBe(false);
    }
    expect(await counter('guest_to_guest_dropped')).toBeGreaterThan(before);
    // directly: pin work's real MAC in kid's neighbour table; the isolated bridge port drops it
    await mustNs('kid', [
      'ip',
      'neigh',
      'replace',
      guest('work').ipv4,
      'lladdr',
      guest('work').mac,
      'dev',
      'eth0',
      'nud',
      'permanent',
    ]);
    try {
      await mustNs('work', ['bash', '-c', 'timeout 5 nc -l -p 7777 > /tmp/portcullis-direct.txt &']);
      const r = await inNs('kid', [
        'bash',
        '-c',
        `echo direct | timeout 3 nc -w 2 ${guest('work').ipv4} 7777`,
      ]);
      expect(r.code).not.toBe(0);
    } finally {
      await inNs('kid', ['ip', 'neigh', 'del', guest('work').ipv4, 'dev', 'eth0']);
    }
  });

  it("drops kid's packets sent with work's IP, and counts them", async () => {
    const before = await counter('spoof_dropped');
    await mustNs('kid', ['ip', 'addr', 'add', `${guest('work').ipv4}/32`, 'dev', 'eth0']);
    try {
      const r = await curl('kid', `http://${web}/`, ['--interface', guest('work').ipv4], 2);
      expect(r.ok).toBe(false);
    } finally {
      await mustNs('kid', ['ip', 'addr', 'del', `${guest('work').ipv4}/32`, 'dev', 'eth0']);
    }
    expect(await counter('spoof_dropped')).toBeGreaterThan(before);
    expect(internetRequests().some((q) => q.client === wanAddress && q.path === '/spoofed')).toBe(false);
  });

  it('drops a forged MAC, unknown or borrowed, and counts it', async () => {
    const unknownBefore = await counter('unknown_mac_dropped');
    const portMacBefore = await counter('port_mac_dropped', 'bridge');
    const kid = guest('kid');
    try {
      await mustNs('kid', ['ip', 'link', 'set', 'eth0', 'address', '52:54:00:00:00:99']);
      expect(await reachesInternet('kid')).toBe(false);
      expect(await counter('unknown_mac_dropped')).toBeGreaterThan(unknownBefore);
      // work's MAC on kid's port: dropped at the guest bridge, before it learns the MAC there
      await mustNs('kid', ['ip', 'link', 'set', 'eth0', 'address', guest('work').mac]);
      expect(await reachesInternet('kid')).toBe(false);
      expect(await counter('port_mac_dropped', 'bridge')).toBeGreaterThan(portMacBefore);
    } finally {
      await mustNs('kid', ['ip', 'link', 'set', 'eth0', 'address', kid.mac]);
      await inNs('kid', ['ip', 'neigh', 'flush', 'dev', 'eth0']);
    }
    expect(await reachesInternet('kid')).toBe(true);
  });

  it('keeps the management API from guests and serves it to the management side', async () => {
    for (const addr of [mgmt, topology.lan.gateway, wanAddress]) {
      expect((await curl('kid', `https://${addr}:${topology.api.port}/api/v1/health`, [], 2)).ok).toBe(false);
    }
    const health = await api<{ status: string }>('GET', '/api/v1/health');
    expect(health.status).toBe(200);
  });

  it("answers a guest's DNS query to any resolver itself, forwarding upstream", async () => {
    const direct = await mustNs('kid', [
      'dig',
      '+short',
      '+time=2',
      '+tries=1',
      'example.test',
      `@${topology.lan.gateway}`,
    ]);
    expect(direct.trim()).toBe(web);
    // a query to another public resolver is redirected to the appliance: the other
    // resolver would have answered with its own address for every name
    const other = await mustNs('kid', [
      'dig',
      '+short',
      '+time=2',
      '+tries=1',
      'example.test',
      `@${topology.internet.altResolver}`,
    ]);
    expect(other.trim()).toBe(web);
    expect(other).not.toContain(ALT_RESOLVER_ANSWER);
    const tcp = await mustNs('kid', [
      'dig',
      '+short',
      '+tcp',
      '+time=2',
      '+tries=1',
      'example.test',
      '@198.51.100.77',
    ]);
    expect(tcp.trim()).toBe(web);
  });

  it('drops guest IPv6 when IPv6 is not enabled', async () => {
    const before = await counter('ipv6_dropped');
    const ll = (
      await mustNs('secvm', ['ip', '-6', '-o', 'addr', 'show', 'dev', 'lan0', 'scope', 'link'])
    ).match(/fe80::[0-9a-f:]+/)?.[0];
    expect(ll).toBeDefined();
    const r = await inNs('kid', ['ping', '-6', '-c', '2', '-W', '1', `${ll}%eth0`]);
    expect(r.code).not.toBe(0);
    expect(await counter('ipv6_dropped')).toBeGreaterThan(before);
  });

  it('rejects an invalid policy naming the bad field, and leaves the kernel ruleset byte-identical', async () => {
    const before = await nftTable();
    const badCidr = await api<{ code: string; path: string; message: string }>(
      'POST',
      '/api/v1/vms/kid/rules',
      { action: 'drop', to: { cidr: '10.0.0.300/8' } },
    );
    expect(badCidr.status).toBe(400);
    expect(badCidr.body.path).toMatch(/cidr/);
    const unknownVm = await api<{ code: string; path: string }>('POST', '/api/v1/vms/kid/rules', {
      action: 'accept',
      to: { vm: 'nosuchvm' },
    });
    expect(unknownVm.status).toBeGreaterThanOrEqual(400);
    expect(unknownVm.status).toBeLessThan(500);
    expect(unknownVm.body.path).toMatch(/vm/);
    const dupMac = await api<{ code: string; path: string }>('POST', '/api/v1/vms', {
      name: 'evil',
      mac: guest('kid').mac,
      ipv4: '10.20.0.66',
      profile: 'open',
    });
    expect(dupMac.status).toBeGreaterThanOrEqual(400);
    expect(dupMac.status).toBeLessThan(500);
    expect(dupMac.body.path).toMatch(/mac/);
    expect(await nftTable()).toBe(before);
  });

  it('keeps an established TCP connection through a service restart with the same policy', async () => {
    // a slow download that takes several seconds; restart the service in the middle
    const transfer = download('kid', web, 1_000_000, { rate: '200k', maxTimeS: 30, timeoutMs: 40_000 });
    await sleep(1500);
    const pid = servicePid();
    expect(pid).toBeDefined();
    process.kill(pid!, 'SIGTERM');
    await sleep(500);
    await restartService();
    const r = await transfer;
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('1000000');
  });

  it('keeps enforcing after kill -9 of the service', async () => {
    const pid = servicePid();
    expect(pid).toBeDefined();
    process.kill(pid!, 'SIGKILL');
    await sleep(300);
    expect(servicePid()).toBeUndefined();
    await enforcementHolds();
    const before = await counter('spoof_dropped');
    await mustNs('kid', ['ip', 'addr', 'add', `${guest('browse').ipv4}/32`, 'dev', 'eth0']);
    try {
      expect((await curl('kid', `http://${web}/`, ['--interface', guest('browse').ipv4], 2)).ok).toBe(false);
    } finally {
      await mustNs('kid', ['ip', 'addr', 'del', `${guest('browse').ipv4}/32`, 'dev', 'eth0']);
    }
    expect(await counter('spoof_dropped')).toBeGreaterThan(before);
    await restartService();
    await enforcementHolds();
  });
});

describe('the gate at boot', () => {
  it('is closed until the service applies its policy', async () => {
    await down();
    await up({ service: false });
    try {
      // guests have no lease yet; give kid its address by hand: still nothing gets out
      await mustNs('kid', ['ip', 'addr', 'add', `${guest('kid').ipv4}/24`, 'dev', 'eth0']);
      await mustNs('kid', ['ip', 'route', 'add', 'default', 'via', topology.lan.gateway]);
      expect(await reachesInternet('kid')).toBe(false);
      const table = await nftTable();
      expect(table).toMatch(
        /chain forward \{\s+type filter hook forward priority filter - 10; policy drop;\s+\}/,
      );
      await restartService();
      expect(await reachesInternet('kid')).toBe(true);
    } finally {
      await down();
    }
  });
});
