import { describe, expect, it } from 'vitest';
import { isPortcullisError } from '../errors.js';
import { summarisePcap } from './pcap.js';
import { makePcap } from './test-fakes.js';

describe('summarisePcap', () => {
  it('counts whole packets and the bytes up to the last one', () => {
    expect(summarisePcap(makePcap([]))).toEqual({ packets: 0, bytes: 24 });
    expect(summarisePcap(makePcap([60, 1514]))).toEqual({ packets: 2, bytes: 24 + 76 + 1530 });
  });

  it('leaves out a packet tcpdump was still writing, and one past the size bound', () => {
    const full = makePcap([60, 100, 200]);
    expect(summarisePcap(full.subarray(0, full.length - 1))).toEqual({ packets: 2, bytes: 24 + 76 + 116 });
    expect(summarisePcap(full, 24 + 76 + 116 + 10)).toEqual({ packets: 2, bytes: 24 + 76 + 116 });
  });

  it('reads big-endian files too', () => {
    const be = Buffer.alloc(24 + 16 + 4);
    be.writeUInt32BE(0xa1b2c3d4, 0);
    be.writeUInt32BE(4, 24 + 8);
    expect(summarisePcap(be)).toEqual({ packets: 1, bytes: 44 });
  });

  it('refuses what is no pcap', () => {
    for (const buf of [Buffer.from('hello'), Buffer.alloc(24), Buffer.from('0a0d0d0a'.repeat(8), 'hex')]) {
      let code: string | undefined;
      try {
        summarisePcap(buf);
      } catch (err) {
        code = isPortcullisError(err) ? err.code : String(err);
      }
      expect(code).toBe('CAPTURE_FAILED');
    }
  });
});
