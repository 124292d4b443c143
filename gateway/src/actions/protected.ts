import { ipv4ToInt, isIpv4, parseIpv6 } from '../policy/net.js';

/**
 * Addresses the IPS never blocks, by CIDR: what the appliance itself needs (its
 * upstream resolvers, bundle and update servers, the management network) and the
 * config's allowlist. A guest that provokes an alert against one of these gets the
 * alert recorded, and nobody loses the address. Pure.
 */
export class ProtectedAddresses {
  readonly #v4: { net: number; mask: number }[] = [];
  readonly #v6: { groups: number[]; len: number }[] = [];

  /**
   * @param cidrs addresses or prefixes, IPv4 or IPv6 (`192.0.2.53`, `10.0.0.0/8`, `2001:db8::/32`).
   * @throws Error naming the entry that is neither.
   */
  constructor(cidrs: readonly string[]) {
    for (const c of cidrs) {
      const [addr = '', lenText] = c.split('/');
      if (isIpv4(addr)) {
        const len = lenText === undefined ? 32 : Number(lenText);
        const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
        this.#v4.push({ net: (ipv4ToInt(addr) & mask) >>> 0, mask });
        continue;
      }
      const groups = parseIpv6(addr);
      if (!groups) throw new Error(`"${c}" is not an IPv4 or IPv6 address or prefix`);
      this.#v6.push({ groups, len: lenText === undefined ? 128 : Number(lenText) });
    }
  }

  /** Whether `address` lies in one of the protected prefixes. */
  has(address: string): boolean {
    if (isIpv4(address)) {
      const n = ipv4ToInt(address);
      return this.#v4.some((r) => (n & r.mask) >>> 0 === r.net);
    }
    const g = parseIpv6(address);
    if (!g) return false;
    return this.#v6.some((r) => {
      for (let bit = 0; bit < r.len; bit++) {
        const i = bit >> 4;
        const b = 15 - (bit & 15);
        if (((g[i]! >> b) & 1) !== ((r.groups[i]! >> b) & 1)) return false;
      }
      return true;
    });
  }
}
