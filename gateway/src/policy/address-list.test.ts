import { describe, expect, it } from 'vitest';
import { parseAddressList } from './address-list.js';

describe('parseAddressList', () => {
  it('reads addresses and prefixes, skipping comments and blank lines', () => {
    expect(parseAddressList('# deny\n192.0.2.1\n\n198.51.100.0/24  # a net\n2001:db8::/32\n', 'x')).toEqual([
      '192.0.2.1',
      '198.51.100.0/24',
      '2001:db8::/32',
    ]);
  });

  it('names the first bad line', () => {
    expect(() => parseAddressList('192.0.2.1\n10.0.0.1/8\n', 'deny.txt')).toThrow(
      'address list deny.txt, line 2: "10.0.0.1/8" has host bits set; did you mean 10.0.0.0/8?',
    );
    expect(() => parseAddressList('192.0.2.1\nnot-an-address\n', 'deny.txt')).toThrow(/line 2/);
  });

  it('rejects binary files and huge lines', () => {
    expect(() => parseAddressList('192.0.2.1\n\u0000\u0001', 'bin')).toThrow(/NUL bytes/);
    expect(() => parseAddressList(`${'1'.repeat(500)}\n`, 'long')).toThrow(/line 1: line is longer than 128/);
  });
});
