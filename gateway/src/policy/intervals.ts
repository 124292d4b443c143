import { formatIpv6, ipv4ToInt, intToIpv4, parseCidr, parseIpv6 } from './net.js';
import type { NftValue } from '../nft/types.js';

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
