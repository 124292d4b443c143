import { describe, expect, it } from 'vitest';
import {
  cloneJson,
  deepFreeze,
  fingerprint,
  frozenCopy,
  isDeepFrozen,
  sameJson,
  share,
} from './fingerprint.js';
import { kidAndWork } from './test-fixtures.js';
import type { Policy } from './model.js';

const makePolicy = (): Policy =>
  kidAndWork([{ name: 'guest', mac: '52:54:00:00:00:0c', ipv4: '10.20.0.12', profile: 'open' }], {
    vpnEndpoints: ['203.0.113.200'],
  });

describe('fingerprint', () => {
  it('is JSON with sorted keys: equal values give equal text whatever their key order', () => {
    expect(fingerprint({ b: 1, a: [true, null, 'x'] })).toBe('{"a":[true,null,"x"],"b":1}');
    expect(fingerprint({ a: 1, b: { d: 2, c: 3 } })).toBe(fingerprint({ b: { c: 3, d: 2 }, a: 1 }));
  });

  it('leaves undefined properties out, as JSON does', () => {
    expect(fingerprint({ a: 1, b: undefined })).toBe(fingerprint({ a: 1 }));
    expect(fingerprint([undefined])).toBe('[null]');
    expect(fingerprint(undefined)).toBe('');
  });

  it('tells a changed VM from an unchanged one', () => {
    const p = deepFreeze(makePolicy());
    const changed = cloneJson(p.vms[0]!);
    changed.rules!.push({ id: 'b', action: 'drop', to: { cidr: '192.0.2.1' } });
    expect(fingerprint(changed)).not.toBe(fingerprint(p.vms[0]));
    expect(fingerprint(cloneJson(p.vms[0]!))).toBe(fingerprint(p.vms[0]));
  });

  it('sees a change to a mutable value made after an earlier fingerprint', () => {
    const vm = makePolicy().vms[0]!;
    const before = fingerprint(vm);
    vm.ipv4 = '10.20.0.99';
    expect(fingerprint(vm)).not.toBe(before);
    expect(fingerprint(vm)).toContain('10.20.0.99');
  });

  it('computes the text of a deep-frozen value once', () => {
    const vm = deepFreeze(makePolicy().vms[0]!);
    expect(fingerprint(vm)).toBe(fingerprint(vm));
    // the same string object: remembered, not rebuilt
    expect(Object.is(fingerprint(vm), fingerprint(vm))).toBe(true);
  });

  it('does not remember a frozen object whose parts are mutable', () => {
    const rules = [{ id: 'a', action: 'drop' as const, to: { cidr: '192.0.2.1' } }];
    const vm = Object.freeze({ name: 'kid', rules });
    const before = fingerprint(vm);
    rules[0]!.to.cidr = '192.0.2.2';
    expect(fingerprint(vm)).not.toBe(before);
  });
});

describe('sameJson', () => {
  it('agrees with the fingerprints', () => {
    const pairs: Array<[unknown, unknown]> = [
      [{ a: 1, b: undefined }, { a: 1 }],
      [{ a: [1, 2] }, { a: [2, 1] }],
      [{ a: { b: 'x' } }, { a: { b: 'x' } }],
      [
        [1, undefined],
        [1, null],
      ],
      [{ a: 1 }, { a: 1, b: 2 }],
      [null, {}],
      [[], {}],
      ['1', 1],
      [Number.NaN, null],
    ];
    for (const [a, b] of pairs)
      expect(sameJson(a, b), JSON.stringify([a, b])).toBe(fingerprint(a) === fingerprint(b));
  });

  it('finds a deep difference', () => {
    const a = makePolicy();
    const b = cloneJson(a);
    expect(sameJson(a, b)).toBe(true);
    b.vms[0]!.rules![0]!.to = { cidr: '198.51.100.1' };
    expect(sameJson(a, b)).toBe(false);
  });
});

describe('share', () => {
  it('returns prev itself when nothing changed', () => {
    const prev = deepFreeze(makePolicy());
    expect(share(prev, cloneJson(prev))).toBe(prev);
  });

  it('keeps the unchanged VMs as prev’s objects and the changed one as new', () => {
    const prev = deepFreeze(makePolicy());
    const draft = cloneJson(prev);
    draft.vms[1]!.notes = 'changed';
    const next = share(prev, draft);
    expect(next).not.toBe(prev);
    expect(next.vms[0]).toBe(prev.vms[0]);
    expect(next.vms[2]).toBe(prev.vms[2]);
    expect(next.vms[1]).not.toBe(prev.vms[1]);
    expect(next.vms[1]!.notes).toBe('changed');
    // the parts of the policy the change did not touch are shared too
    expect(next.vpnEndpoints).toBe(prev.vpnEndpoints);
    expect(next).toEqual(draft);
  });

  it('matches VMs by name, so removing one does not unshare those after it', () => {
    const prev = deepFreeze(makePolicy());
    const draft = cloneJson(prev);
    draft.vms.splice(0, 1);
    const next = share(prev, draft);
    expect(next.vms).toHaveLength(2);
    expect(next.vms[0]).toBe(prev.vms[1]);
    expect(next.vms[1]).toBe(prev.vms[2]);
  });

  it('notices a change in order', () => {
    const prev = deepFreeze(makePolicy());
    const draft = cloneJson(prev);
    draft.vms.reverse();
    const next = share(prev, draft);
    expect(next).not.toBe(prev);
    expect(next.vms.map((v) => v.name)).toEqual(['guest', 'work', 'kid']);
    expect(next.vms[0]).toBe(prev.vms[2]);
  });

  it('treats a property set to undefined as absent', () => {
    const prev = deepFreeze(makePolicy());
    const draft = cloneJson(prev);
    draft.vms[1]!.owner = undefined;
    expect(share(prev, draft)).toBe(prev);
  });

  it('notices a removed property', () => {
    const prev = deepFreeze(makePolicy());
    const draft = cloneJson(prev);
    delete draft.vms[0]!.rules;
    const next = share(prev, draft);
    expect(next).not.toBe(prev);
    expect(next.vms[0]!.rules).toBeUndefined();
    expect(next.vms[1]).toBe(prev.vms[1]);
  });
});

describe('freezing', () => {
  it('tells deep-frozen values from partly frozen ones', () => {
    expect(isDeepFrozen(deepFreeze(makePolicy()))).toBe(true);
    expect(isDeepFrozen(Object.freeze({ a: [] }))).toBe(false);
    expect(isDeepFrozen('text')).toBe(true);
  });

  it('copies only what is not frozen yet', () => {
    const frozenVm = deepFreeze(makePolicy().vms[0]!);
    const mixed = { vms: [frozenVm, { name: 'new' }] };
    const copy = frozenCopy(mixed);
    expect(copy).not.toBe(mixed);
    expect(copy.vms[0]).toBe(frozenVm);
    expect(isDeepFrozen(copy)).toBe(true);
    expect(Object.isFrozen(mixed)).toBe(false);
    const whole = deepFreeze(makePolicy());
    expect(frozenCopy(whole)).toBe(whole);
  });

  it('clones frozen data into mutable data', () => {
    const prev = deepFreeze(makePolicy());
    const draft = cloneJson(prev);
    expect(draft).toEqual(prev);
    draft.vms[0]!.rules!.push({ id: 'b', action: 'drop', to: { cidr: '192.0.2.1' } });
    expect(prev.vms[0]!.rules).toHaveLength(1);
  });
});
