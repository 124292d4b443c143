import { describe, expect, it } from 'vitest';
import { FailureLimiter } from './limiter.js';

describe('FailureLimiter', () => {
  it('refuses a key after max failures until its window ends', () => {
    let now = 1_000_000;
    const l = new FailureLimiter({ max: 3, windowMs: 60_000, now: () => now });
    l.fail('mum');
    l.fail('mum');
    expect(l.retryAfter('mum')).toBe(0);
    l.fail('mum');
    expect(l.retryAfter('mum')).toBe(60);
    expect(l.retryAfter('dad')).toBe(0);
    now += 59_500;
    expect(l.retryAfter('mum')).toBe(1);
    now += 500;
    expect(l.retryAfter('mum')).toBe(0);
  });

  it('forgets a key on reset, and keeps at most maxKeys', () => {
    const l = new FailureLimiter({ max: 1, windowMs: 60_000, maxKeys: 2, now: () => 0 });
    l.fail('a');
    l.reset('a');
    expect(l.retryAfter('a')).toBe(0);
    l.fail('a');
    l.fail('b');
    l.fail('c');
    expect(l.retryAfter('a')).toBe(0);
    expect(l.retryAfter('c')).toBeGreaterThan(0);
  });
});
