import { describe, expect, it } from 'vitest';
import { RebindingGuard } from './rebinding.js';

describe('RebindingGuard', () => {
  const guard = new RebindingGuard({ internal: ['203.0.113.0/28'], allowNames: ['intranet.example'] });

  it.each([
    '10.1.2.3',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.1.1',
    '127.0.0.1',
    '169.254.169.254',
    '100.64.0.1',
    '0.0.0.0',
    '224.0.0.1',
    '255.255.255.255',
    '203.0.113.5',
  ])('IPv4 %s is internal', (a) => expect(guard.internal([a], [])).toBe(true));

  it.each(['8.8.8.8', '172.32.0.1', '203.0.113.16', '198.51.100.10', '1.1.1.1'])('IPv4 %s is not', (a) =>
    expect(guard.internal([a], [])).toBe(false),
  );

  it.each(['::1', '::', 'fd00::1', 'fe80::1', 'ff02::1', '::ffff:10.0.0.1', '::ffff:192.168.0.1'])(
    'IPv6 %s is internal',
    (a) => expect(guard.internal([], [a])).toBe(true),
  );

  it.each(['2001:db8::1', '2606:4700::1111', '::ffff:8.8.8.8'])('IPv6 %s is not', (a) =>
    expect(guard.internal([], [a])).toBe(false),
  );

  it('one internal address among public ones is enough', () => {
    expect(guard.internal(['8.8.8.8', '10.0.0.1'], [])).toBe(true);
  });

  it('lets the configured names (and their subdomains) resolve internally', () => {
    expect(guard.allowed('intranet.example')).toBe(true);
    expect(guard.allowed('wiki.intranet.example')).toBe(true);
    expect(guard.allowed('notintranet.example')).toBe(false);
  });
});
