import { ipv4ToInt, isIpv4, parseIpv6 } from '../policy/net.js';

/**
 * DNS-rebinding protection: addresses an internet name must never resolve to for a
 * guest (the LAN, other VMs, the appliance, loopback, link-local …). An upstream
 * answer carrying one is answered without addresses, so no guest reaches an internal
 * address by a name, and no `accept` rule or approved request learns one into a VM's
 * sets. Pure; the filter memoises the result per cached answer.
 */

/** IPv4 ranges no internet name should point at, as [network, prefix length]. */
const INTERNAL_V4: readonly (readonly [string, number])[] = [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8], // RFC 1918
  ['100.64.0.0', 10], // CGNAT, RFC 6598
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local
  ['172.16.0.0', 12], // RFC 1918
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.168.0.0', 16], // RFC 1918
  ['198.18.0.0', 15], // benchmarking
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
];

interface V4Range {
  readonly net: number;
  readonly mask: number;
}

const toRange = (net: string, len: number): V4Range => {
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return { net: (ipv4ToInt(net) & mask) >>> 0, mask };
};

/** Options of {@link RebindingGuard}. */
export interface RebindingOptions {
  /** More IPv4 CIDRs that count as internal (the LAN prefix when it is public space). */
  readonly internal?: readonly string[];
  /**
   * Names (and their subdomains) allowed to resolve to internal addresses: an intranet
   * name a VM reaches through its VPN. Default none.
   */
  readonly allowNames?: readonly string[];
}

/** Decides whether an answer's addresses are internal, for a name. */
export class RebindingGuard {
  readonly #v4: readonly V4Range[];
  readonly #allow: readonly string[];

  constructor(options: RebindingOptions = {}) {
    this.#v4 = [
      ...INTERNAL_V4.map(([n, l]) => toRange(n, l)),
      ...(options.internal ?? []).map((cidr) => {
        const [n, l] = cidr.split('/');
        return toRange(n!, l === undefined ? 32 : Number(l));
      }),
    ];
    this.#allow = (options.allowNames ?? []).map((n) => n.toLowerCase().replace(/\.$/, ''));
  }

  /** Whether `name` may resolve to internal addresses (configured by the admin). */
  allowed(name: string): boolean {
    return this.#allow.some((a) => name === a || name.endsWith(`.${a}`));
  }

  /** Whether any of the addresses is internal. */
  internal(v4: readonly string[], v6: readonly string[]): boolean {
    return v4.some((a) => this.internalV4(a)) || v6.some((a) => internalV6(a, (x) => this.internalV4(x)));
  }

  internalV4(a: string): boolean {
    if (!isIpv4(a)) return false;
    const n = ipv4ToInt(a);
    return this.#v4.some((r) => (n & r.mask) >>> 0 === r.net);
  }
}

/** Loopback, unspecified, ULA (fc00::/7), link-local (fe80::/10), multicast, and IPv4-mapped internal addresses. */
export function internalV6(a: string, v4: (a: string) => boolean): boolean {
  const g = parseIpv6(a);
  if (g === undefined) return false;
  const [g0, g1, g2, g3, g4, g5, g6, g7] = g as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  if (g0 === 0 && g1 === 0 && g2 === 0 && g3 === 0 && g4 === 0) {
    if (g5 === 0 && g6 === 0 && (g7 === 0 || g7 === 1)) return true; // :: and ::1
    if (g5 === 0xffff) return v4(`${g6 >> 8}.${g6 & 255}.${g7 >> 8}.${g7 & 255}`); // ::ffff:a.b.c.d
  }
  return (g0 & 0xfe00) === 0xfc00 || (g0 & 0xffc0) === 0xfe80 || (g0 & 0xff00) === 0xff00;
}
