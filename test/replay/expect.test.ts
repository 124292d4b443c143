import { describe, expect, it } from 'vitest';
import { countMatching, jsonEqual, matches, valueAt, type Json } from './expect.js';

const event: Json = {
  event_type: 'alert',
  alert: { signature_id: 7, metadata: null },
  files: [{ filename: 'J.txt', size: 16384, stored: false }],
  dns: { query: [{ z: true }] },
  vlan: [23, 24],
  http: { hostname: 'a.b' },
};

describe('expect.json checks', () => {
  it('follows dotted paths and list indexes; missing is null', () => {
    expect(valueAt(event, 'alert.signature_id')).toBe(7);
    expect(valueAt(event, 'files[0].filename')).toBe('J.txt');
    expect(valueAt(event, 'dns.query[0].z')).toBe(true);
    expect(valueAt(event, 'vlan[1]')).toBe(24);
    expect(valueAt(event, 'vlan[2]')).toBeNull();
    expect(valueAt(event, 'files[0].nope')).toBeNull();
    expect(valueAt(event, 'alert.signature_id.deeper')).toBeNull();
    expect(valueAt(event, 'toString')).toBeNull();
  });

  it('matches every key, with JSON equality', () => {
    expect(matches(event, { event_type: 'alert', 'alert.signature_id': 7, 'files[0].stored': false })).toBe(
      true,
    );
    expect(matches(event, { event_type: 'alert', 'alert.signature_id': 8 })).toBe(false);
    expect(matches(event, { 'alert.signature_id': '7' })).toBe(false);
    expect(matches(event, { 'alert.nope': null })).toBe(true);
    expect(matches(event, { vlan: [23, 24] })).toBe(true);
    expect(matches(event, { vlan: [24, 23] })).toBe(false);
  });

  it('has-key and not-has-key: present and not null, or not', () => {
    expect(matches(event, { 'has-key': 'http' })).toBe(true);
    expect(matches(event, { 'has-key': ['http', 'dns.query'] })).toBe(true);
    expect(matches(event, { 'has-key': 'alert.metadata' })).toBe(false);
    expect(matches(event, { 'not-has-key': ['flow', 'pgsql'] })).toBe(true);
    expect(matches(event, { 'not-has-key': ['flow', 'http'] })).toBe(false);
  });

  it('counts matching events', () => {
    expect(countMatching([event, { event_type: 'flow' }, event], { event_type: 'alert' })).toBe(2);
  });

  it('compares objects in any key order', () => {
    expect(jsonEqual({ a: 1, b: [1, { c: 2 }] }, { b: [1, { c: 2 }], a: 1 })).toBe(true);
    expect(jsonEqual({ a: 1 }, { a: 1, b: null })).toBe(false);
  });
});
