import { formatIpv6, ipv4ToInt, intToIpv4, parseCidr, parseIpv6 } from './net.js';
import type { NftValue, PackedIpv4 } from '../nft/types.js';

/**
 * Normalise an address list for an nft interval set: overlapping and adjacent
 * prefixes merge, the result is sorted and disjoint, so the kernel never sees
 * conflicting intervals and element diffs stay exact. Pure.
 */
export function normaliseIntervals(cidrs: readonly string[]): { v4: NftValue[]; v6: NftValue[] } {
  const v4: Array<[number, number]> = [];
  const v6: Array<[bigint, bigint]> = [];
  for (const c of cidrs) {
    const p = parseCidr(c);
    if ('error' in p) continue;
    const [addr] = p.text.split('/');
    if (p.family === 4) {
      const start = ipv4ToInt(addr!);
      const size = 2 ** (32 - p.prefix);
      v4.push([start, start + size - 1]);
    } else {
      const g = parseIpv6(addr!)!;
      let start = 0n;
      for (const x of g) start = (start << 16n) | BigInt(x);
      const size = 1n << BigInt(128 - p.prefix);
      v6.push([start, start + size - 1n]);
    }
  }
  return { v4: mergeV4(v4), v6: mergeV6(v6) };
}

function mergeV4(list: Array<[number, number]>): NftValue[] {
  list.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const out: NftValue[] = [];
  let cur: [number, number] | undefined;
  const flush = (r: [number, number]): void => {
    out.push(rangeToValue4(r[0], r[1]));
  };
  for (const r of list) {
    if (cur && r[0] <= cur[1] + 1) {
      if (r[1] > cur[1]) cur[1] = r[1];
    } else {
      if (cur) flush(cur);
      cur = [r[0], r[1]];
    }
  }
  if (cur) flush(cur);
  return out;
}

function rangeToValue4(a: number, b: number): NftValue {
  if (a === b) return intToIpv4(a);
  const size = b - a + 1;
  const len = 32 - Math.log2(size);
  if (Number.isInteger(len) && a % size === 0) return { prefix: { addr: intToIpv4(a), len } };
  return { range: [intToIpv4(a), intToIpv4(b)] };
}

function mergeV6(list: Array<[bigint, bigint]>): NftValue[] {
  list.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const out: NftValue[] = [];
  let cur: [bigint, bigint] | undefined;
  for (const r of list) {
    if (cur && r[0] <= cur[1] + 1n) {
      if (r[1] > cur[1]) cur[1] = r[1];
    } else {
      if (cur) out.push(rangeToValue6(cur[0], cur[1]));
      cur = [r[0], r[1]];
    }
  }
  if (cur) out.push(rangeToValue6(cur[0], cur[1]));
  return out;
}

function fmt6(n: bigint): string {
  const g: number[] = [];
  for (let i = 7; i >= 0; i--) g.push(Number((n >> BigInt(i * 16)) & 0xffffn));
  return formatIpv6(g);
}

function rangeToValue6(a: bigint, b: bigint): NftValue {
  if (a === b) return fmt6(a);
  const size = b - a + 1n;
  let len = 128;
  let s = size;
  while (s > 1n && (s & 1n) === 0n) {
    s >>= 1n;
    len--;
  }
  if (s === 1n && a % size === 0n) return { prefix: { addr: fmt6(a), len } };
  return { range: [fmt6(a), fmt6(b)] };
}

/**
 * Group an address list by prefix length, for hash sets matched as
 * `ip daddr & mask == @set_len`: loading 100,000s of entries into hash sets is several
 * times faster than into one interval set, and overlaps need no merging. Host bits
 * are cleared; IPv4 networks come back as 32-bit integers (nft's JSON takes them and
 * parses them faster than dotted text), packed, sorted and unique. Pure.
 */
export function groupByPrefix(cidrs: readonly string[]): {
  v4: Map<number, PackedIpv4>;
  v6: Map<number, string[]>;
} {
  const buckets: Array<Uint32Array | undefined> = new Array(33);
  const counts = new Int32Array(33);
  const v6 = new Map<number, string[]>();
  for (const c of cidrs) {
    // inline dotted-quad parser: this loop sees a million entries
    let octet = 0;
    let digits = 0;
    let addr = 0;
    let dots = 0;
    let i = 0;
    let ok = true;
    for (; i < c.length; i++) {
      const ch = c.charCodeAt(i);
      if (ch >= 48 && ch <= 57) {
        octet = octet * 10 + (ch - 48);
        if (++digits > 3 || octet > 255) {
          ok = false;
          break;
        }
      } else if (ch === 46) {
        if (digits === 0 || dots === 3) {
          ok = false;
          break;
        }
        addr = addr * 256 + octet;
        octet = 0;
        digits = 0;
        dots++;
      } else break;
    }
    let len = 32;
    if (ok && digits > 0 && dots === 3) {
      addr = addr * 256 + octet;
      if (i < c.length) {
        if (c.charCodeAt(i) !== 47 || c.length - i - 1 < 1 || c.length - i - 1 > 2) ok = false;
        else {
          len = 0;
          for (let j = i + 1; j < c.length; j++) {
            const ch = c.charCodeAt(j);
            if (ch < 48 || ch > 57) ok = false;
            len = len * 10 + (ch - 48);
          }
          if (len > 32) ok = false;
        }
      }
      if (ok) {
        const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
        let b = buckets[len];
        if (!b || counts[len] === b.length) {
          const grown = new Uint32Array(Math.max(1024, (b?.length ?? 0) * 2));
          if (b) grown.set(b);
          buckets[len] = b = grown;
        }
        b[counts[len]!++] = (addr & mask) >>> 0;
        continue;
      }
    }
    const p = parseCidr(c);
    if ('error' in p || p.family !== 6) continue;
    const list = v6.get(p.prefix) ?? [];
    list.push(p.text.split('/')[0]!);
    v6.set(p.prefix, list);
  }
  const v4 = new Map<number, PackedIpv4>();
  for (let len = 32; len >= 0; len--) {
    const b = buckets[len];
    if (!b) continue;
    const sorted = b.subarray(0, counts[len]).sort();
    let n = 0;
    for (let k = 0; k < sorted.length; k++)
      if (k === 0 || sorted[k] !== sorted[k - 1]) sorted[n++] = sorted[k]!;
    // a copy of exactly the unique entries: the growth buffer goes
    v4.set(len, sorted.slice(0, n));
  }
  for (const list of v6.values()) list.sort();
  return { v4, v6: new Map([...v6.entries()].sort((a, b) => b[0] - a[0])) };
}

/** The netmask of an IPv4 prefix length, dotted. */
export function maskV4(len: number): string {
  return intToIpv4(len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0);
}

/** The netmask of an IPv6 prefix length, as text. */
export function maskV6(len: number): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) {
    const bits = Math.max(0, Math.min(16, len - i * 16));
    g.push(bits === 0 ? 0 : (0xffff << (16 - bits)) & 0xffff);
  }
  return formatIpv6(g);
}
