import { describe, expect, it } from 'vitest';
import { progressLine } from './bundle-update.js';

/** The progress bar `portcullis bundle update` draws on stderr. */
describe('progressLine', () => {
  it('draws the share downloaded of the signed length', () => {
    expect(progressLine({ phase: 'download', bytes: 1_250_000, total: 2_500_000 }, 10)).toBe(
      'download [#####.....] 50% 1.3/2.5 MB',
    );
  });
  it('names the phase without bytes, and nothing when idle', () => {
    expect(progressLine({ phase: 'health', version: 7 })).toBe('health version 7');
    expect(progressLine({ phase: 'unpack', bytes: 3_000_000 })).toBe('unpack 3.0 MB');
    expect(progressLine({ phase: 'idle' })).toBe('');
  });
});
