import { describe, expect, it } from 'vitest';
import { isPortcullisError } from '../../errors.js';
import { LeaseTable, PrivateNetworkResolver, eveAddress, isPrivateAddress, vmForEvent } from './leases.js';
import { parseEveLine } from './parse.js';
import type { EveEvent } from './types.js';

const T0 = Date.UTC(2024, 0, 31, 12, 0, 0);
const HOUR = 3_600_000;

function makeEvent(overrides: Record<string, unknown> = {}): EveEvent {
  const r = parseEveLine(
    JSON.stringify({
      timestamp: '2024-01-31T12:30:00.000000+0000',
      event_type: 'flow',
      src_ip: '10.0.0.2',
      src_port: 40000,
      dest_ip: '192.0.2.7',
      dest_port: 443,
      proto: 'TCP',
      flow: {},
      ...overrides,
    }),
  );
  if (!r.ok) throw new Error(r.error.message);
  return r.event;
}

describe('eveAddress', () => {
  it.each([
    ['10.0.0.2', '10.0.0.2'],
    ['2001:db8::1', '2001:0db8:0000:0000:0000:0000:0000:0001'],
    ['2001:DB8:0:0:0:0:0:1', '2001:0db8:0000:0000:0000:0000:0000:0001'],
    ['::1', '0000:0000:0000:0000:0000:0000:0000:0001'],
    ['::', '0000:0000:0000:0000:0000:0000:0000:0000'],
    ['fe80::1%eth0', 'fe80:0000:0000:0000:0000:0000:0000:0001'],
    ['::ffff:192.0.2.1', '0000:0000:0000:0000:0000:ffff:c000:0201'],
    ['2001:0db8:0001:0000:0000:0000:0000:0001', '2001:0db8:0001:0000:0000:0000:0000:0001'],
  ])('spells %s as Suricata does', (input, eve) => {
    expect(eveAddress(input)).toBe(eve);
  });

  it.each([
    '',
    '10.0.0',
    '10.0.0.256',
    '1.2.3.4.5',
    'a.b.c.d',
    '2001:db8::1::2',
    '12345::',
    '1:2:3:4:5:6:7:8:9',
    'fe80::g',
  ])('rejects %s', (input) => {
    expect(eveAddress(input)).toBeUndefined();
  });
});

describe('LeaseTable', () => {
  it('answers who held an address at a time', () => {
    const t = new LeaseTable();
    t.add({ vm: 'kid', address: '10.0.0.2', from: T0, until: T0 + HOUR });
    expect(t.vmAt('10.0.0.2', T0)).toBe('kid');
    expect(t.vmAt('10.0.0.2', T0 + HOUR - 1)).toBe('kid');
    expect(t.vmAt('10.0.0.2', T0 + HOUR)).toBeUndefined();
    expect(t.vmAt('10.0.0.2', T0 - 1)).toBeUndefined();
    expect(t.vmAt('10.0.0.3', T0)).toBeUndefined();
  });

  it('gives a reused address to its new holder from the new lease on', () => {
    const t = new LeaseTable();
    t.add({ vm: 'kid', address: '10.0.0.2', from: T0, until: T0 + 2 * HOUR });
    t.add({ vm: 'work', address: '10.0.0.2', from: T0 + HOUR, until: T0 + 3 * HOUR });
    expect(t.vmAt('10.0.0.2', T0 + HOUR - 1)).toBe('kid');
    expect(t.vmAt('10.0.0.2', T0 + HOUR)).toBe('work');
    expect(t.vmAt('10.0.0.2', T0 + 2 * HOUR + 1)).toBe('work');
    expect(t.size).toBe(2);
  });

  it('cuts an older lease in two around a newer one of another VM', () => {
    const t = new LeaseTable();
    t.add({ vm: 'kid', address: '10.0.0.2', from: T0, until: T0 + 3 * HOUR });
    t.add({ vm: 'work', address: '10.0.0.2', from: T0 + HOUR, until: T0 + 2 * HOUR });
    expect([T0, T0 + HOUR, T0 + 2 * HOUR].map((at) => t.vmAt('10.0.0.2', at))).toEqual([
      'kid',
      'work',
      'kid',
    ]);
  });

  it('merges renewals of the same VM', () => {
    const t = new LeaseTable();
    t.add({ vm: 'kid', address: '10.0.0.2', from: T0, until: T0 + HOUR });
    t.add({ vm: 'kid', address: '10.0.0.2', from: T0 + HOUR, until: T0 + 2 * HOUR });
    expect(t.leases()).toEqual([{ vm: 'kid', address: '10.0.0.2', from: T0, until: T0 + 2 * HOUR }]);
  });

  it("finds IPv6 leases under Suricata's spelling and the short one", () => {
    const t = new LeaseTable();
    t.add({ vm: 'kid', address: '2001:db8::2' });
    expect(t.vmAt('2001:0db8:0000:0000:0000:0000:0000:0002', T0)).toBe('kid');
    expect(t.vmAt('2001:db8::2', T0)).toBe('kid');
    expect(t.has('2001:db8:0::2')).toBe(true);
    expect(t.addressesOf('kid', T0)).toEqual(['2001:0db8:0000:0000:0000:0000:0000:0002']);
  });

  it('ends a lease on release, and prunes old ones', () => {
    const t = new LeaseTable();
    t.add({ vm: 'kid', address: '10.0.0.2', from: T0, until: T0 + 2 * HOUR });
    t.add({ vm: 'old', address: '10.0.0.9', from: T0 - 10 * HOUR, until: T0 - 9 * HOUR });
    expect(t.end('10.0.0.2', T0 + HOUR)).toBe(true);
    expect(t.vmAt('10.0.0.2', T0 + HOUR)).toBeUndefined();
    expect(t.vmAt('10.0.0.2', T0 + HOUR - 1)).toBe('kid');
    expect(t.end('10.0.0.2', T0 + 5 * HOUR)).toBe(false);
    expect(t.prune(T0 - HOUR)).toBe(1);
    expect(t.has('10.0.0.9')).toBe(false);
    t.removeVm('kid');
    expect(t.size).toBe(0);
  });

  it('refuses what is not an address, and empty intervals', () => {
    const t = new LeaseTable();
    expect(() => t.add({ vm: 'kid', address: 'kid.lan' })).toThrow(/not an IPv4 or IPv6 address/);
    const err = (() => {
      try {
        t.add({ vm: 'kid', address: '10.0.0.2', from: T0, until: T0 });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(isPortcullisError(err, 'CONFIG_INVALID')).toBe(true);
  });
});

describe('vmForEvent', () => {
  const leases = new LeaseTable();
  leases.add({ vm: 'kid', address: '10.0.0.2', from: T0, until: T0 + HOUR });
  leases.add({ vm: 'work', address: '10.0.0.3' });

  it('finds the guest as the source, the remote as the destination', () => {
    expect(vmForEvent(makeEvent(), leases)).toEqual({
      vm: 'kid',
      side: 'src',
      guestIp: '10.0.0.2',
      remoteIp: '192.0.2.7',
      remotePort: 443,
      remoteVm: undefined,
      at: T0 + HOUR / 2,
    });
  });

  it('finds the guest as the destination of a reply', () => {
    const m = vmForEvent(
      makeEvent({ src_ip: '192.0.2.7', src_port: 443, dest_ip: '10.0.0.2', dest_port: 40000 }),
      leases,
    );
    expect(m).toMatchObject({
      vm: 'kid',
      side: 'dest',
      guestIp: '10.0.0.2',
      remoteIp: '192.0.2.7',
      remotePort: 443,
    });
  });

  it('uses the event time: no VM once the lease has ended', () => {
    expect(vmForEvent(makeEvent({ timestamp: '2024-01-31T13:30:00.000000+0000' }), leases)).toBeUndefined();
    expect(vmForEvent(makeEvent({ timestamp: '2024-01-31T13:30:00.000000+0100' }), leases)?.vm).toBe('kid');
  });

  it('marks VM-to-VM traffic', () => {
    expect(vmForEvent(makeEvent({ dest_ip: '10.0.0.3' }), leases)).toMatchObject({
      vm: 'kid',
      remoteVm: 'work',
    });
  });

  it('finds nothing for events without addresses or guests', () => {
    expect(vmForEvent(makeEvent({ src_ip: '198.51.100.1' }), leases)).toBeUndefined();
    const stats = parseEveLine(
      '{"timestamp":"2024-01-31T12:30:00.000000+0000","event_type":"stats","stats":{}}',
    );
    if (!stats.ok) throw new Error('fixture');
    expect(vmForEvent(stats.event, leases)).toBeUndefined();
  });
});

describe('PrivateNetworkResolver', () => {
  it('treats every private address as one VM', () => {
    const r = new PrivateNetworkResolver('replay');
    expect(vmForEvent(makeEvent({ src_ip: '192.0.2.7', dest_ip: '172.16.5.4' }), r)).toMatchObject({
      vm: 'replay',
      side: 'dest',
    });
    expect(r.vmAt('8.8.8.8')).toBeUndefined();
  });

  it.each([
    ['10.1.2.3', true],
    ['172.31.255.255', true],
    ['172.32.0.1', false],
    ['192.168.1.1', true],
    ['127.0.0.1', true],
    ['100.64.0.1', true],
    ['8.8.8.8', false],
    ['fd00:0000:0000:0000:0000:0000:0000:0001', true],
    ['fe80::1', true],
    ['::1', true],
    ['2001:db8::1', false],
  ])('%s is private: %s', (a, want) => {
    expect(isPrivateAddress(a)).toBe(want);
  });
});
