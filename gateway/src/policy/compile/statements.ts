import type { NftStatement, NftValue } from '../../nft/types.js';

/** The nft JSON statements and values the compiler writes, in short. */

export const m = (left: NftValue, right: NftValue, op: '==' | '!=' | '<' = '=='): NftStatement => ({
  match: { op, left, right },
});
export const meta = (key: string): NftValue => ({ meta: { key } });
export const payload = (protocol: string, field: string): NftValue => ({ payload: { protocol, field } });
export const counter = (name?: string): NftStatement => ({ counter: name ?? null });
export const ACCEPT: NftStatement = { accept: null };
export const DROP: NftStatement = { drop: null };

export const limitOver = (kbytes: number): NftStatement => ({
  limit: {
    rate: kbytes,
    per: 'second',
    rate_unit: 'kbytes',
    burst: Math.max(kbytes, 64),
    burst_unit: 'kbytes',
    inv: true,
  },
});
export const REJECT: NftStatement = { reject: null };

export function cidrValue(text: string): NftValue {
  const [addr, len] = text.split('/');
  return len === undefined ? addr! : { prefix: { addr: addr!, len: Number(len) } };
}

/** Seconds from now until `iso`, or undefined for no expiry; ≤ 0 means expired. */
export function remaining(iso: string | undefined, now: Date): number | undefined {
  if (iso === undefined) return undefined;
  return Math.floor((Date.parse(iso) - now.getTime()) / 1000);
}

/** nft parses `meta time` strings in the process time zone; the service runs with TZ=UTC. */
export function utcTime(iso: string): string {
  return new Date(iso).toISOString().slice(0, 19).replace('T', ' ');
}
