import { describe, expect, it } from 'vitest';
import { ProtectedAddresses } from './protected.js';

describe('ProtectedAddresses', () => {
  const p = new ProtectedAddresses(['192.0.2.53', '10.0.0.0/8', '2001:db8:1::/48']);

  it('holds the listed addresses and prefixes, and nothing else', () => {
    expect(p.has('192.0.2.53')).toBe(true);
    expect(p.has('192.0.2.54')).toBe(false);
    expect(p.has('10.200.3.4')).toBe(true);
    expect(p.has('11.0.0.1')).toBe(false);
    expect(p.has('2001:db8:1:ffff::1')).toBe(true);
    expect(p.has('2001:db8:2::1')).toBe(false);
    expect(p.has('not an address')).toBe(false);
  });

  it('names an entry that is not an address', () => {
    expect(() => new ProtectedAddresses(['resolver.example'])).toThrow(/"resolver.example" is not an IPv4/);
  });
});
