/** Address parsing and checks, pure. */

import { PortcullisError } from '../errors.js';

export interface ParsedCidr {
  readonly family: 4 | 6;
  /** Normalised text: network address, `/len` only when shorter than a host. */
  readonly text: string;
  readonly prefix: number;
}

const V4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function isIpv4(s: string): boolean {
  return V4.test(s);
}

export function ipv4ToInt(s: string): number {
  const p = s.split('.').map(Number);
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
}

export function intToIpv4(n: number): string {
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** Parse an IPv6 address into 8 groups, or undefined. Accepts `::` and an embedded IPv4 tail. */
export function parseIpv6(s: string): number[] | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(s) || s.length > 45) return undefined;
  let tail: number[] = [];
  let str = s;
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.')) {
    const v4 = s.slice(lastColon + 1);
    if (!isIpv4(v4)) return undefined;
    const n = ipv4ToInt(v4);
    tail = [n >>> 16, n & 0xffff];
    str = s.slice(0, lastColon + 1) + (s[lastColon - 1] === ':' ? '' : '0');
    if (str.endsWith(':0')) str = str.slice(0, -2);
    else if (str.endsWith(':')) str = str.slice(0, -1);
  }
  const halves = str.split('::');
  if (halves.length > 2) return undefined;
  const parse = (h: string): number[] | undefined => {
    if (h === '') return [];
    const out: number[] = [];
    for (const g of h.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const head = parse(halves[0]!);
  const rest = halves.length === 2 ? parse(halves[1]!) : [];
  if (!head || !rest) return undefined;
  const want = 8 - tail.length;
  if (halves.length === 2) {
    if (head.length + rest.length > want - 1) return undefined;
    return [...head, ...new Array<number>(want - head.length - rest.length).fill(0), ...rest, ...tail];
  }
  if (head.length !== want) return undefined;
  return [...head, ...tail];
}

export function isIpv6(s: string): boolean {
  return parseIpv6(s) !== undefined;
}

/** RFC 5952 text of 8 groups. */
export function formatIpv6(g: number[]): string {
  // RFC 5952: compress the longest run of zero groups (length >= 2).
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** Parse `a.b.c.d`, `a.b.c.d/n`, `x::y`, `x::y/n`; the host bits must be zero. */
export function parseCidr(s: string): ParsedCidr | { error: string } {
  const [addr, len, extra] = s.split('/');
  if (extra !== undefined || addr === undefined) return { error: `"${s}" is not an address or CIDR prefix` };
  if (isIpv4(addr)) {
    const prefix = len === undefined ? 32 : Number(len);
    if (!/^\d{1,2}$/.test(len ?? '32') || prefix > 32)
      return { error: `"${s}": IPv4 prefix length must be 0 to 32` };
    const n = ipv4ToInt(addr);
    const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
    if ((n & ~mask) >>> 0 !== 0) {
      return { error: `"${s}" has host bits set; did you mean ${intToIpv4((n & mask) >>> 0)}/${prefix}?` };
    }
    return { family: 4, prefix, text: prefix === 32 ? addr : `${addr}/${prefix}` };
  }
  const g = parseIpv6(addr);
  if (g) {
    const prefix = len === undefined ? 128 : Number(len);
    if (!/^\d{1,3}$/.test(len ?? '128') || prefix > 128)
      return { error: `"${s}": IPv6 prefix length must be 0 to 128` };
    for (let bit = prefix; bit < 128; bit++) {
      if ((g[bit >> 4]! >> (15 - (bit & 15))) & 1) return { error: `"${s}" has host bits set` };
    }
    const text = formatIpv6(g);
    return { family: 6, prefix, text: prefix === 128 ? text : `${text}/${prefix}` };
  }
  return { error: `"${s}" is not an IPv4 or IPv6 address or CIDR prefix` };
}

export function normaliseMac(mac: string): string {
  return mac.toLowerCase();
}

/** An inclusive range of IPv4 addresses (the form the compiler's nft `range` takes). */
export interface Ipv4Range {
  readonly from: string;
  readonly to: string;
}

/**
 * Parse `first-last` (`10.20.0.200-10.20.0.249`), both ends included.
 * @throws CONFIG_INVALID when an end is no IPv4 address or `first` comes after `last`.
 */
export function parseIpv4Range(text: string): Ipv4Range {
  const ends = text.split('-');
  const [from, to] = ends;
  if (ends.length !== 2 || !isIpv4(from!) || !isIpv4(to!))
    throw new PortcullisError(
      'CONFIG_INVALID',
      `"${text}" is not an IPv4 range; write it as first-last, e.g. 10.20.0.200-10.20.0.249`,
    );
  if (ipv4ToInt(from!) > ipv4ToInt(to!))
    throw new PortcullisError(
      'CONFIG_INVALID',
      `IPv4 range "${text}" ends before it starts; write the lower address first`,
    );
  return { from: from!, to: to! };
}

/** Whether `ip` is an IPv4 address inside `range`; false for anything else (IPv6, garbage). */
export function inIpv4Range(ip: string, range: Ipv4Range): boolean {
  if (!isIpv4(ip)) return false;
  const n = ipv4ToInt(ip);
  return n >= ipv4ToInt(range.from) && n <= ipv4ToInt(range.to);
}
