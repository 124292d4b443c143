import { describe, expect, it } from 'vitest';
import { TokenBuckets } from './rate.js';

describe('TokenBuckets', () => {
  it('allows a burst, then the rate', () => {
    let t = 0;
    const b = new TokenBuckets({ ratePerSecond: 2, burst: 3, now: () => t });
    expect([b.take('a'), b.take('a'), b.take('a'), b.take('a')]).toEqual([true, true, true, false]);
    t += 499;
    expect(b.take('a')).toBe(false);
    t += 1;
    expect(b.take('a')).toBe(true);
    expect(b.take('a')).toBe(false);
  });

  it('keeps keys apart', () => {
    const b = new TokenBuckets({ ratePerSecond: 1, burst: 1, now: () => 0 });
    expect(b.take('a')).toBe(true);
    expect(b.take('a')).toBe(false);
    expect(b.take('b')).toBe(true);
  });

  it('never saves up more than the burst', () => {
    let t = 0;
    const b = new TokenBuckets({ ratePerSecond: 10, burst: 2, now: () => t });
    b.take('a');
    t += 60_000;
    expect([b.take('a'), b.take('a'), b.take('a')]).toEqual([true, true, false]);
  });

  it('forgets the least recently seen key beyond maxKeys', () => {
    const b = new TokenBuckets({ ratePerSecond: 1, burst: 1, maxKeys: 2, now: () => 0 });
    b.take('a');
    b.take('b');
    b.take('a'); // a is now the most recent
    b.take('c'); // forgets b
    expect(b.size).toBe(2);
    expect(b.take('a')).toBe(false);
    expect(b.take('b')).toBe(true); // a fresh bucket
  });
});
