import { describe, expect, it, vi } from 'vitest';
import { EventBus } from './events.js';

interface TestEvents {
  ping: { n: number };
  pong: string;
}

describe('EventBus', () => {
  it('delivers events to their listeners in registration order', () => {
    const bus = new EventBus<TestEvents>();
    const seen: string[] = [];
    bus.on('a', 'ping', ({ n }) => seen.push(`a${n}`));
    bus.on('b', 'ping', ({ n }) => seen.push(`b${n}`));
    bus.on('a', 'pong', (s) => seen.push(s));
    bus.emit('ping', { n: 1 });
    bus.emit('pong', 'x');
    expect(seen).toEqual(['a1', 'b1', 'x']);
  });

  it("removes all of an owner's listeners, on every event", () => {
    const bus = new EventBus<TestEvents>();
    const owner = {};
    const cb = vi.fn();
    bus.on(owner, 'ping', cb);
    bus.on(owner, 'pong', cb);
    bus.on('other', 'ping', cb);
    bus.off(owner);
    expect(bus.listenerCount('ping')).toBe(1);
    expect(bus.listenerCount('pong')).toBe(0);
    bus.emit('pong', 'x');
    expect(cb).not.toHaveBeenCalled();
  });

  it('keeps delivering when a listener throws', () => {
    const error = vi.fn();
    const bus = new EventBus<TestEvents>({ error } as never);
    const after = vi.fn();
    bus.on('bad', 'ping', () => {
      throw new Error('boom');
    });
    bus.on('good', 'ping', after);
    expect(() => bus.emit('ping', { n: 1 })).not.toThrow();
    expect(after).toHaveBeenCalledWith({ n: 1 });
    expect(error).toHaveBeenCalledOnce();
  });

  it('lets a listener remove itself while the event is delivered', () => {
    const bus = new EventBus<TestEvents>();
    const seen: string[] = [];
    bus.on('once', 'ping', () => {
      seen.push('once');
      bus.off('once');
    });
    bus.on('always', 'ping', () => seen.push('always'));
    bus.emit('ping', { n: 1 });
    bus.emit('ping', { n: 2 });
    expect(seen).toEqual(['once', 'always', 'always']);
  });
});
