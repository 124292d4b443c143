import { describe, expect, it } from 'vitest';
import { ActionEngine, alertFacts, withFlowTuple, type AlertFacts, type Decision } from './engine.js';
import type { AlertActions } from './model.js';
import { parseEveLine } from '../suricata/eve/parse.js';
import { LeaseTable, vmForEvent } from '../suricata/eve/leases.js';

const T0 = Date.UTC(2024, 0, 31, 12, 0, 0);

class FakeClock {
  t = T0;
  readonly now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

function makeFacts(overrides: Partial<AlertFacts> = {}): AlertFacts {
  return {
    timestamp: '2024-01-31T12:00:00.000000+0000',
    vm: 'kid',
    remote: '192.0.2.7',
    remoteIsGuest: false,
    srcIp: '10.0.0.2',
    destIp: '192.0.2.7',
    flowId: 1,
    gid: 1,
    sid: 2_100_498,
    rev: 7,
    signature: 'GPL ATTACK_RESPONSE id check returned root',
    category: 'Potentially Bad Traffic',
    severity: 1,
    action: 'allowed',
    ...overrides,
  };
}

function makeEngine(
  actions: AlertActions,
  clock = new FakeClock(),
  maxTracked?: number,
): { engine: ActionEngine; clock: FakeClock } {
  return { engine: ActionEngine.withActions(actions, clock.now, { maxTracked }), clock };
}

const kinds = (ds: readonly Decision[]): string[] => ds.map((d) => d.kind);

describe('ActionEngine', () => {
  it('always records, first, even with nothing configured and no VM', () => {
    const { engine } = makeEngine({});
    expect(kinds(engine.onAlert(makeFacts()))).toEqual(['record']);
    const [rec] = engine.onAlert(makeFacts({ vm: undefined, remote: undefined }));
    expect(rec).toMatchObject({
      kind: 'record',
      vm: null,
      sid: 2_100_498,
      severity: 1,
      signature: 'GPL ATTACK_RESPONSE id check returned root',
      remote: null,
    });
  });

  it('blocks the remote host for the duration when severity is at most maxSeverity (1 is the most severe)', () => {
    const { engine } = makeEngine({ block: { maxSeverity: 2, duration: 600 } });
    expect(engine.onAlert(makeFacts({ severity: 2 }))).toContainEqual({
      kind: 'block',
      vm: 'kid',
      remote: '192.0.2.7',
      until: T0 + 600_000,
      seconds: 600,
      sid: 2_100_498,
      reason: 'alert 1:2100498 "GPL ATTACK_RESPONSE id check returned root" (severity 2) from VM kid',
      reassert: false,
    });
    expect(kinds(engine.onAlert(makeFacts({ severity: 3, remote: '198.51.100.1' })))).toEqual(['record']);
  });

  it('does not stack blocks: repeats are dropped, then re-asserted for one duration once half of it has passed', () => {
    const { engine, clock } = makeEngine({ block: { maxSeverity: 1, duration: 100 } });
    expect(kinds(engine.onAlert(makeFacts()))).toEqual(['record', 'block']);
    clock.advance(10_000);
    expect(kinds(engine.onAlert(makeFacts()))).toEqual(['record']);
    clock.advance(45_000);
    const again = engine.onAlert(makeFacts()).find((d) => d.kind === 'block');
    expect(again).toMatchObject({ reassert: true, until: clock.t + 100_000, seconds: 100 });
    expect(engine.stats()).toMatchObject({ activeBlocks: 1, blocksDeduped: 1 });
    clock.advance(200_000);
    expect(engine.onAlert(makeFacts()).find((d) => d.kind === 'block')).toMatchObject({ reassert: false });
  });

  it('never blocks a guest (VM-to-VM), nor without a VM', () => {
    const { engine } = makeEngine({ block: { maxSeverity: 3, duration: 60 } });
    expect(kinds(engine.onAlert(makeFacts({ remote: '10.0.0.3', remoteIsGuest: true })))).toEqual(['record']);
    expect(kinds(engine.onAlert(makeFacts({ vm: undefined })))).toEqual(['record']);
  });

  it('quarantines after count qualifying alerts within the window, once', () => {
    const { engine, clock } = makeEngine({ quarantine: { maxSeverity: 2, count: 3, windowMinutes: 10 } });
    expect(kinds(engine.onAlert(makeFacts({ sid: 1 })))).toEqual(['record']);
    clock.advance(60_000);
    expect(kinds(engine.onAlert(makeFacts({ sid: 2, severity: 3 })))).toEqual(['record']); // not severe enough
    expect(kinds(engine.onAlert(makeFacts({ sid: 3 })))).toEqual(['record']);
    clock.advance(60_000);
    const ds = engine.onAlert(makeFacts({ sid: 4, severity: 2 }));
    expect(ds.find((d) => d.kind === 'quarantine')).toEqual({
      kind: 'quarantine',
      vm: 'kid',
      at: T0 + 120_000,
      sids: [1, 3, 4],
      reason: '3 alerts with severity ≤ 2 within 10 minutes (last: sid 4)',
    });
    expect(kinds(engine.onAlert(makeFacts()))).toEqual(['record']);
    engine.release('kid');
    expect(engine.stats().quarantined).toBe(0);
  });

  it('forgets alerts that slid out of the window', () => {
    const { engine, clock } = makeEngine({ quarantine: { maxSeverity: 1, count: 3, windowMinutes: 1 } });
    for (let i = 0; i < 10; i++) {
      expect(kinds(engine.onAlert(makeFacts()))).toEqual(['record']);
      clock.advance(31_000); // only two ever fit in one minute
    }
    expect(engine.stats().windows).toBe(1);
  });

  it('counts per VM', () => {
    const { engine } = makeEngine({ quarantine: { maxSeverity: 1, count: 2, windowMinutes: 1 } });
    engine.onAlert(makeFacts({ vm: 'kid' }));
    expect(kinds(engine.onAlert(makeFacts({ vm: 'work' })))).toEqual(['record']);
    expect(kinds(engine.onAlert(makeFacts({ vm: 'kid' })))).toEqual(['record', 'quarantine']);
  });

  it('notifies the webhook for severe alerts, at most once per VM and signature per interval, and on quarantine', () => {
    const url = 'https://parent.example/hook';
    const { engine, clock } = makeEngine({
      block: { maxSeverity: 1, duration: 60 },
      quarantine: { maxSeverity: 1, count: 2, windowMinutes: 5 },
      notify: { url, maxSeverity: 1, minInterval: 60 },
    });
    const first = engine.onAlert(makeFacts());
    expect(first.find((d) => d.kind === 'notify')).toEqual({
      kind: 'notify',
      url,
      vm: 'kid',
      payload: {
        event: 'alert',
        vm: 'kid',
        at: '2024-01-31T12:00:00.000Z',
        sid: 2_100_498,
        signature: 'GPL ATTACK_RESPONSE id check returned root',
        severity: 1,
        remote: '192.0.2.7',
        actions: ['block'],
      },
    });
    clock.advance(1000);
    const second = engine.onAlert(makeFacts());
    expect(
      second.filter((d) => d.kind === 'notify').map((d) => (d.kind === 'notify' ? d.payload.event : '')),
    ).toEqual(['quarantine']);
    clock.advance(60_000);
    expect(kinds(engine.onAlert(makeFacts({ severity: 2 })))).toEqual(['record']);
    expect(kinds(engine.onAlert(makeFacts()))).toContain('notify');
    expect(engine.stats().notificationsDeduped).toBe(1);
  });

  it("uses each VM's own profile", () => {
    const engine = new ActionEngine({
      clock: new FakeClock().now,
      actionsFor: (vm) => (vm === 'kid' ? { block: { maxSeverity: 3, duration: 60 } } : {}),
    });
    expect(kinds(engine.onAlert(makeFacts({ vm: 'kid', severity: 3 })))).toEqual(['record', 'block']);
    expect(kinds(engine.onAlert(makeFacts({ vm: 'work', severity: 1, remote: '198.51.100.9' })))).toEqual([
      'record',
    ]);
  });

  it('keeps bounded memory under a flood of distinct remotes and signatures', () => {
    const { engine, clock } = makeEngine(
      {
        block: { maxSeverity: 3, duration: 3600 },
        notify: { url: 'http://h/x', maxSeverity: 3, minInterval: 3600 },
      },
      new FakeClock(),
      1000,
    );
    for (let i = 0; i < 20_000; i++) {
      engine.onAlert(makeFacts({ remote: `198.51.${(i >> 8) & 255}.${i & 255}`, sid: i }));
      clock.advance(1);
    }
    const s = engine.stats();
    expect(s.activeBlocks).toBeLessThanOrEqual(1000);
    expect(s.notifyKeys).toBeLessThanOrEqual(1000);
    clock.advance(3_600_000);
    engine.sweep();
    expect(engine.stats()).toMatchObject({ activeBlocks: 0, notifyKeys: 0 });
  });
});

describe('ActionEngine blast radius', () => {
  const actions: AlertActions = {
    block: { maxSeverity: 2, duration: 600, globalSids: [9_000_001] },
    quarantine: { maxSeverity: 2, count: 2, windowMinutes: 10 },
  };

  it('blocks a remote for the alerting VM only: another VM alerting on it gets a block of its own', () => {
    const { engine } = makeEngine(actions);
    const kid = engine.onAlert(makeFacts({ vm: 'kid' })).find((d) => d.kind === 'block');
    expect(kid).toMatchObject({ vm: 'kid', remote: '192.0.2.7' });
    expect(kid).not.toHaveProperty('global');
    const work = engine.onAlert(makeFacts({ vm: 'work' })).find((d) => d.kind === 'block');
    expect(work).toMatchObject({ vm: 'work', remote: '192.0.2.7', reassert: false });
  });

  it('blocks for every VM only the signatures the profile marks global', () => {
    const { engine } = makeEngine(actions);
    expect(engine.onAlert(makeFacts({ sid: 9_000_001 })).find((d) => d.kind === 'block')).toMatchObject({
      global: true,
    });
  });

  it('never blocks a protected address, and counts that', () => {
    const clock = new FakeClock();
    const engine = new ActionEngine({
      clock: clock.now,
      actionsFor: () => actions,
      isProtected: (remote) => remote === '192.0.2.53',
    });
    expect(kinds(engine.onAlert(makeFacts({ remote: '192.0.2.53', fromVm: false })))).toEqual(['record']);
    // control: the same alert against another address blocks it
    expect(kinds(engine.onAlert(makeFacts({ remote: '192.0.2.54', fromVm: false })))).toEqual([
      'record',
      'block',
    ]);
    expect(engine.stats().blocksProtected).toBe(1);
  });

  it('counts towards quarantine only alerts on packets the VM sent', () => {
    const { engine } = makeEngine(actions);
    // inbound: anyone on the internet can provoke these
    for (let i = 0; i < 5; i++) engine.onAlert(makeFacts({ fromVm: false, remote: `198.51.100.${i}` }));
    expect(engine.stats()).toMatchObject({ quarantined: 0, quarantineIgnored: 5 });
    engine.onAlert(makeFacts({ fromVm: true }));
    expect(kinds(engine.onAlert(makeFacts({ fromVm: true })))).toContain('quarantine');
  });
});

describe('alertFacts', () => {
  it('takes the alert and the remote side from an EVE alert and its VM match', () => {
    const line =
      '{"timestamp":"2016-07-13T22:42:07.388030+0000","flow_id":1984224970187887,"event_type":"alert","src_ip":"82.165.177.154","src_port":80,"dest_ip":"10.16.1.11","dest_port":54186,"proto":"TCP","alert":{"action":"allowed","gid":1,"signature_id":2100498,"rev":7,"signature":"GPL ATTACK_RESPONSE id check returned root","category":"Potentially Bad Traffic","severity":2}}';
    const r = parseEveLine(line);
    if (!r.ok || r.event.event_type !== 'alert') throw new Error('fixture');
    const leases = new LeaseTable();
    leases.add({ vm: 'kid', address: '10.16.1.11' });
    expect(alertFacts(r.event, vmForEvent(r.event, leases))).toEqual({
      timestamp: '2016-07-13T22:42:07.388030+0000',
      vm: 'kid',
      remote: '82.165.177.154',
      remoteIsGuest: false,
      // the remote sent the packet that alerted: this alert does not count towards quarantine
      fromVm: false,
      srcIp: '82.165.177.154',
      destIp: '10.16.1.11',
      flowId: 1984224970187887,
      gid: 1,
      sid: 2100498,
      rev: 7,
      signature: 'GPL ATTACK_RESPONSE id check returned root',
      category: 'Potentially Bad Traffic',
      severity: 2,
      action: 'allowed',
    });
  });
});

describe('withFlowTuple', () => {
  it("puts the alert's protocol and ports on its record, and leaves the other decisions as they are", () => {
    const decisions = makeEngine({ block: { maxSeverity: 1, duration: 60 } }).engine.onAlert(makeFacts());
    const out = withFlowTuple(decisions, { proto: 'TCP', src_port: 40000, dest_port: 80 });
    expect(out[0]).toEqual({ ...decisions[0], proto: 'TCP', srcPort: 40000, destPort: 80 });
    expect(out.slice(1)).toEqual(decisions.slice(1));
    expect(out.length).toBeGreaterThan(1);
    // an ICMP alert has no ports
    expect(withFlowTuple(decisions, { proto: 'ICMP' })[0]).toEqual({ ...decisions[0], proto: 'ICMP' });
  });
});
