import { PortcullisError } from '../../errors.js';
import { eveTimeMs } from './parse.js';
import type { EveEvent } from './types.js';

/**
 * Which VM an event belongs to. Guests are known by the addresses the appliance leases
 * them, each valid for an interval (DHCP leases end, addresses get reused), so the
 * question is always "who held this address at the event's time". Pure: no I/O, no clock.
 *
 * Addresses are kept in Suricata's EVE spelling (IPv4 dotted quad; IPv6 as eight
 * four-digit lower-case groups), so an event's address is looked up as it is.
 */

/** One address held by one VM over `[from, until)`, both in ms since the epoch. */
export interface Lease {
  readonly vm: string;
  /** In EVE spelling; {@link LeaseTable.add} converts any valid spelling. */
  readonly address: string;
  readonly from: number;
  /** Exclusive; `Infinity` for a static address. */
  readonly until: number;
}

/** Answers "which VM held this address at this time". */
export interface VmResolver {
  /** Cheap pre-check: could `address` belong to a VM at some time? */
  has(address: string): boolean;
  /** The VM that held `address` at `at` (ms since the epoch), if any. */
  vmAt(address: string, at: number): string | undefined;
}

/** The guest side of an event. */
export interface VmMatch {
  readonly vm: string;
  /** Where the guest is in the event: `src_ip` or `dest_ip`. */
  readonly side: 'src' | 'dest';
  readonly guestIp: string;
  /** The other side's address and port, if the event has them. */
  readonly remoteIp: string | undefined;
  readonly remotePort: number | undefined;
  /** Set when the other side is a guest too (VM-to-VM traffic). */
  readonly remoteVm: string | undefined;
  /** The event time used, ms since the epoch. */
  readonly at: number;
}

/**
 * An address in EVE spelling, or undefined if `text` is not an IPv4 or IPv6 address.
 * IPv6 zone ids (`%eth0`) are dropped.
 */
export function eveAddress(text: string): string | undefined {
  if (text.includes(':')) return expandIpv6(text);
  return canonicalIpv4(text);
}

function canonicalIpv4(text: string): string | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const out: number[] = [];
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out.push(n);
  }
  return out.join('.');
}

function expandIpv6(input: string): string | undefined {
  let text = input.toLowerCase();
  const zone = text.indexOf('%');
  if (zone !== -1) text = text.slice(0, zone);
  // an embedded IPv4 tail (::ffff:192.0.2.1) becomes two groups
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = canonicalIpv4(tail);
    if (v4 === undefined) return undefined;
    const [a, b, c, d] = v4.split('.').map(Number) as [number, number, number, number];
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const head = halves[0] === '' ? [] : (halves[0] as string).split(':');
  const rest = halves.length === 2 ? (halves[1] === '' ? [] : (halves[1] as string).split(':')) : [];
  let groups: string[];
  if (halves.length === 2) {
    const missing = 8 - head.length - rest.length;
    if (missing < 1) return undefined;
    groups = [...head, ...new Array<string>(missing).fill('0'), ...rest];
  } else {
    groups = head;
  }
  if (groups.length !== 8) return undefined;
  for (const g of groups) if (!/^[0-9a-f]{1,4}$/.test(g)) return undefined;
  return groups.map((g) => g.padStart(4, '0')).join(':');
}

/** The input of {@link LeaseTable.add}: any address spelling; `from`/`until` default to always. */
export interface LeaseInput {
  readonly vm: string;
  readonly address: string;
  readonly from?: number;
  readonly until?: number;
}

/**
 * VM ↔ address leases with validity intervals. Per address, intervals never overlap:
 * a new lease for another VM takes over its interval from older ones (the newest
 * assignment is the truth); a lease for the same VM merges with what it overlaps.
 */
export class LeaseTable implements VmResolver {
  readonly #byAddress = new Map<string, Lease[]>();

  /** Record a lease. Throws CONFIG_INVALID for an address that is not IPv4 or IPv6, or an empty interval. */
  add(input: LeaseInput): Lease {
    const address = eveAddress(input.address);
    if (address === undefined)
      throw new PortcullisError(
        'CONFIG_INVALID',
        `lease for VM "${input.vm}": "${input.address}" is not an IPv4 or IPv6 address`,
      );
    const from = input.from ?? Number.NEGATIVE_INFINITY;
    const until = input.until ?? Number.POSITIVE_INFINITY;
    if (!(from < until))
      throw new PortcullisError(
        'CONFIG_INVALID',
        `lease for VM "${input.vm}" on ${input.address}: "from" must be before "until"`,
      );
    let lease: Lease = { vm: input.vm, address, from, until };
    const kept: Lease[] = [];
    for (const e of this.#byAddress.get(address) ?? []) {
      if (e.until < lease.from || e.from > lease.until) {
        kept.push(e);
      } else if (e.vm === lease.vm) {
        lease = { ...lease, from: Math.min(e.from, lease.from), until: Math.max(e.until, lease.until) };
      } else {
        if (e.from < lease.from) kept.push({ ...e, until: lease.from });
        if (e.until > lease.until) kept.push({ ...e, from: lease.until });
      }
    }
    kept.push(lease);
    kept.sort((a, b) => a.from - b.from);
    this.#byAddress.set(address, kept);
    return lease;
  }

  /** End the lease of `address` that is valid at `at` (DHCP release or expiry). True if one was. */
  end(address: string, at: number): boolean {
    const key = eveAddress(address);
    const list = key === undefined ? undefined : this.#byAddress.get(key);
    if (!list) return false;
    const i = list.findIndex((e) => e.from <= at && at < e.until);
    if (i === -1) return false;
    const e = list[i] as Lease;
    if (e.from < at) list[i] = { ...e, until: at };
    else list.splice(i, 1);
    if (list.length === 0) this.#byAddress.delete(key as string);
    return true;
  }

  /** Forget every lease of `vm` (the VM was deleted). */
  removeVm(vm: string): void {
    for (const [address, list] of this.#byAddress) {
      const kept = list.filter((e) => e.vm !== vm);
      if (kept.length === 0) this.#byAddress.delete(address);
      else this.#byAddress.set(address, kept);
    }
  }

  /** Drop leases that ended before `before` (ms). Returns how many were dropped. */
  prune(before: number): number {
    let dropped = 0;
    for (const [address, list] of this.#byAddress) {
      const kept = list.filter((e) => e.until >= before);
      dropped += list.length - kept.length;
      if (kept.length === 0) this.#byAddress.delete(address);
      else if (kept.length !== list.length) this.#byAddress.set(address, kept);
    }
    return dropped;
  }

  has(address: string): boolean {
    return this.#byAddress.has(address) || this.#lookupKey(address) !== undefined;
  }

  vmAt(address: string, at: number): string | undefined {
    const list = this.#byAddress.get(address) ?? this.#byAddress.get(this.#lookupKey(address) ?? '');
    if (!list) return undefined;
    for (let i = list.length - 1; i >= 0; i--) {
      const e = list[i] as Lease;
      if (e.from <= at && at < e.until) return e.vm;
    }
    return undefined;
  }

  /** Addresses `vm` held at `at`, in EVE spelling. */
  addressesOf(vm: string, at: number): string[] {
    const out: string[] = [];
    for (const [address, list] of this.#byAddress) {
      if (list.some((e) => e.vm === vm && e.from <= at && at < e.until)) out.push(address);
    }
    return out;
  }

  /** Every lease, by address then time. */
  leases(): Lease[] {
    return [...this.#byAddress.values()].flat();
  }

  /** Number of leases held. */
  get size(): number {
    let n = 0;
    for (const list of this.#byAddress.values()) n += list.length;
    return n;
  }

  /** A non-EVE spelling (`2001:db8::1`) that is known under its EVE spelling. */
  #lookupKey(address: string): string | undefined {
    if (!address.includes(':') || address.length === 39) return undefined;
    const key = eveAddress(address);
    return key !== undefined && this.#byAddress.has(key) ? key : undefined;
  }
}

/** True for loopback, private (RFC 1918, CGNAT 100.64/10), link-local and ULA addresses. */
export function isPrivateAddress(address: string): boolean {
  const a = eveAddress(address);
  if (a === undefined) return false;
  if (!a.includes(':')) {
    const [x, y] = a.split('.').map(Number) as [number, number];
    return (
      x === 10 ||
      x === 127 ||
      (x === 172 && y >= 16 && y <= 31) ||
      (x === 192 && y === 168) ||
      (x === 169 && y === 254) ||
      (x === 100 && y >= 64 && y <= 127)
    );
  }
  const first = parseInt(a.slice(0, 4), 16);
  return (
    (first & 0xfe00) === 0xfc00 ||
    (first & 0xffc0) === 0xfe80 ||
    a === '0000:0000:0000:0000:0000:0000:0000:0001'
  );
}

/**
 * A resolver that treats every private address (see {@link isPrivateAddress}) as one
 * guest named `vm`: for offline replay of captures, which have no leases.
 */
export class PrivateNetworkResolver implements VmResolver {
  readonly #vm: string;
  readonly #cache = new Map<string, boolean>();

  constructor(vm: string) {
    this.#vm = vm;
  }

  has(address: string): boolean {
    let known = this.#cache.get(address);
    if (known === undefined) {
      known = isPrivateAddress(address);
      if (this.#cache.size >= 65_536) this.#cache.clear();
      this.#cache.set(address, known);
    }
    return known;
  }

  vmAt(address: string): string | undefined {
    return this.has(address) ? this.#vm : undefined;
  }
}

/**
 * The guest side of an event at the event's time: the source if it is a guest, else
 * the destination. Undefined when neither address belongs to a VM (or the event has
 * no addresses, like `stats`).
 */
export function vmForEvent(event: EveEvent, resolver: VmResolver): VmMatch | undefined {
  const raw = event.raw;
  const src = raw.src_ip;
  const dest = raw.dest_ip;
  const srcMaybe = src !== undefined && resolver.has(src);
  const destMaybe = dest !== undefined && resolver.has(dest);
  if (!srcMaybe && !destMaybe) return undefined;
  const at = eveTimeMs(raw.timestamp);
  const srcVm = srcMaybe ? resolver.vmAt(src, at) : undefined;
  const destVm = destMaybe ? resolver.vmAt(dest, at) : undefined;
  if (srcVm !== undefined) {
    return {
      vm: srcVm,
      side: 'src',
      guestIp: src as string,
      remoteIp: dest,
      remotePort: raw.dest_port,
      remoteVm: destVm,
      at,
    };
  }
  if (destVm !== undefined) {
    return {
      vm: destVm,
      side: 'dest',
      guestIp: dest as string,
      remoteIp: src,
      remotePort: raw.src_port,
      remoteVm: undefined,
      at,
    };
  }
  return undefined;
}
