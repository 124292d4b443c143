import { describe, expect, it } from 'vitest';
import { isPortcullisError } from '../errors.js';
import { DEFAULT_CAPTURE_LIMITS, captureBounds, captureTarget, tcpdumpArgs } from './filter.js';

const kid = { name: 'kid', mac: '52:54:00:AA:00:02', ipv4: '10.20.0.12', port: 'g-kid' };

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return isPortcullisError(err) ? `${err.code} ${err.path ?? ''}`.trim() : String(err);
  }
  return undefined;
}

describe('captureTarget', () => {
  it("captures a VM on its port, by its MAC (a port also floods other guests' broadcasts)", () => {
    expect(captureTarget(kid, 'lan0')).toEqual({ iface: 'g-kid', filter: 'ether host 52:54:00:aa:00:02' });
  });

  it('captures a VM without a port on the LAN interface', () => {
    expect(captureTarget({ ...kid, port: undefined }, 'lan0').iface).toBe('lan0');
  });

  it("narrows an alert's flow to both hosts, the protocol and the port", () => {
    const flow = { src: '10.20.0.12', dest: '203.0.113.10', proto: 'TCP', port: 80 };
    expect(captureTarget(kid, 'lan0', flow).filter).toBe(
      'ether host 52:54:00:aa:00:02 and host 10.20.0.12 and host 203.0.113.10 and tcp and port 80',
    );
    expect(captureTarget(kid, 'lan0', { src: '2001:db8::1', dest: 'fe80::1' }).filter).toBe(
      'ether host 52:54:00:aa:00:02 and host 2001:db8::1 and host fe80::1',
    );
  });

  it('lets nothing but addresses, ports and known protocols into the filter', () => {
    const flow = { src: '10.20.0.12', dest: '203.0.113.10' };
    expect(codeOf(() => captureTarget({ ...kid, mac: '52:54:00:aa:00:02 or port 22' }, 'lan0'))).toBe(
      'REQUEST_INVALID /mac',
    );
    expect(codeOf(() => captureTarget(kid, 'lan0', { ...flow, dest: '1.2.3.4 or net 0/0' }))).toBe(
      'REQUEST_INVALID /flow/dest',
    );
    expect(codeOf(() => captureTarget(kid, 'lan0', { ...flow, src: '10.0.0.0/8' }))).toBe(
      'REQUEST_INVALID /flow/src',
    );
    expect(codeOf(() => captureTarget(kid, 'lan0', { ...flow, proto: 'tcp or udp' }))).toBe(
      'REQUEST_INVALID /flow/proto',
    );
    expect(codeOf(() => captureTarget(kid, 'lan0', { ...flow, port: 70000 }))).toBe(
      'REQUEST_INVALID /flow/port',
    );
    expect(codeOf(() => captureTarget(kid, 'lan0', { ...flow, port: 1.5 }))).toBe(
      'REQUEST_INVALID /flow/port',
    );
    expect(codeOf(() => captureTarget({ ...kid, port: 'g-kid;reboot' }, 'lan0'))).toBe(
      'REQUEST_INVALID /iface',
    );
    expect(codeOf(() => captureTarget({ ...kid, port: undefined }, '-w/etc/passwd'))).toBe(
      'REQUEST_INVALID /iface',
    );
    // positive control: the same flow, well-formed, passes
    expect(codeOf(() => captureTarget(kid, 'lan0', { ...flow, proto: 'udp', port: 53 }))).toBeUndefined();
  });
});

describe('captureBounds', () => {
  const limits = { ...DEFAULT_CAPTURE_LIMITS, maxSeconds: 300, maxBytes: 1 << 20 };

  it('takes the seconds asked for and the configured size bound by default', () => {
    expect(captureBounds({ seconds: 30 }, limits)).toEqual({ seconds: 30, maxBytes: 1 << 20 });
    expect(captureBounds({ seconds: 1, maxBytes: 65536 }, limits)).toEqual({ seconds: 1, maxBytes: 65536 });
    expect(captureBounds({ seconds: 300 }, limits).seconds).toBe(300);
  });

  it('refuses durations and sizes outside the limits, naming the bound', () => {
    for (const seconds of [0, 301, 2.5, -1]) {
      expect(codeOf(() => captureBounds({ seconds }, limits))).toBe('REQUEST_INVALID /body/seconds');
    }
    for (const maxBytes of [1000, (1 << 20) + 1]) {
      expect(codeOf(() => captureBounds({ seconds: 5, maxBytes }, limits))).toBe(
        'REQUEST_INVALID /body/maxBytes',
      );
    }
    try {
      captureBounds({ seconds: 301 }, limits);
    } catch (err) {
      expect((err as Error).message).toContain('1 to 300 whole seconds');
    }
  });
});

describe('tcpdumpArgs', () => {
  it('writes packet-buffered to the file, drops root, and passes the filter as one argument after --', () => {
    expect(
      tcpdumpArgs({
        iface: 'g-kid',
        filter: 'ether host 52:54:00:aa:00:02',
        file: '/var/x.pcap',
        user: 'portcullis',
      }),
    ).toEqual([
      '-i',
      'g-kid',
      '-n',
      '-U',
      '--immediate-mode',
      '-B',
      '32768',
      '-s',
      '262144',
      '-w',
      '/var/x.pcap',
      '-Z',
      'portcullis',
      '--',
      'ether host 52:54:00:aa:00:02',
    ]);
  });
});
