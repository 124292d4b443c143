import { describe, expect, it } from 'vitest';
import { reclaimMemory } from './memory.js';

describe('reclaimMemory', () => {
  it('collects garbage now, without putting gc into the global scope', async () => {
    const hadGc = 'gc' in globalThis;
    const ref = ((): WeakRef<object> => new WeakRef({ list: new Array(10_000).fill('x') }))();
    // a WeakRef keeps its target for the rest of the job that made it
    await new Promise((resolve) => setImmediate(resolve));
    reclaimMemory();
    expect(ref.deref()).toBeUndefined();
    expect('gc' in globalThis).toBe(hadGc);
  });
});
