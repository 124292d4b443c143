import { describe, expect, it } from 'vitest';
import { isPortcullisError } from '../errors.js';
import { inIpv4Range, parseIpv4Range } from './net.js';

describe('parseIpv4Range', () => {
  it('reads first-last with both ends included', () => {
    expect(parseIpv4Range('10.20.0.200-10.20.0.249')).toEqual({ from: '10.20.0.200', to: '10.20.0.249' });
  });

  it('takes a range of one address', () => {
    const r = parseIpv4Range('10.20.0.7-10.20.0.7');
    expect(r.from).toBe(r.to);
  });

  it.each(['10.20.0.200', '10.20.0.200-', '10.20.0.256-10.20.0.300', 'a-b', '1.2.3.4-5.6.7.8-9.9.9.9'])(
    'rejects %j with CONFIG_INVALID and an example of the right form',
    (text) => {
      let err: unknown;
      try {
        parseIpv4Range(text);
      } catch (e) {
        err = e;
      }
      expect(isPortcullisError(err) && err.code).toBe('CONFIG_INVALID');
      expect((err as Error).message).toContain('first-last');
    },
  );

  it('rejects a range that ends before it starts', () => {
    expect(() => parseIpv4Range('10.20.0.249-10.20.0.200')).toThrow(/lower address first/);
  });
});

describe('inIpv4Range', () => {
  const pool = parseIpv4Range('10.20.0.200-10.20.0.249');

  it('holds for both ends and the addresses between', () => {
    expect(inIpv4Range('10.20.0.200', pool)).toBe(true);
    expect(inIpv4Range('10.20.0.225', pool)).toBe(true);
    expect(inIpv4Range('10.20.0.249', pool)).toBe(true);
  });

  it('does not hold just outside, in another /24 or for non-IPv4 text', () => {
    expect(inIpv4Range('10.20.0.199', pool)).toBe(false);
    expect(inIpv4Range('10.20.0.250', pool)).toBe(false);
    expect(inIpv4Range('10.21.0.220', pool)).toBe(false);
    expect(inIpv4Range('fd00::c8', pool)).toBe(false);
    expect(inIpv4Range('10.20.0.220.1', pool)).toBe(false);
  });

  it('compares as unsigned numbers above 128.0.0.0', () => {
    const high = parseIpv4Range('192.168.1.10-192.168.1.20');
    expect(inIpv4Range('192.168.1.15', high)).toBe(true);
    expect(inIpv4Range('10.0.0.15', high)).toBe(false);
  });
});
