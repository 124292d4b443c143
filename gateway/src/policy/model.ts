import { Type, type Static } from 'typebox';
import './formats.js';
import { AlertActions } from '../actions/model.js';

/**
 * The policy model: one schema source for the API, the YAML policy file and the
 * compiler. Semantic checks that a schema cannot express (CIDRs, duplicates,
 * references) live in validate.ts.
 */

export const Name = Type.String({
  pattern: '^[a-z][a-z0-9-]{0,30}$',
  description: 'lower-case letters, digits and dashes; starts with a letter; at most 31 characters',
});
export const Mac = Type.String({
  pattern: '^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$',
  description: 'MAC address, six colon-separated hex pairs',
});
export const Ipv4 = Type.String({ description: 'IPv4 address, dotted quad' });
/**
 * A guest's port: the interface its link ends on in the security VM, a port of the
 * guest bridge there (the lab's `g-<vm>` veth; on a KVM host the security VM's NIC on
 * that guest's own libvirt network, or a VLAN subinterface such as `ens4.12`).
 */
export const Port = Type.String({
  pattern: '^[a-zA-Z0-9][a-zA-Z0-9._-]{0,14}$',
  description:
    "the interface the VM's link ends on in the security VM (a Linux interface name, at most 15 characters); frames of the VM's MAC and address are accepted only from it",
});
export const Ipv6 = Type.String({ description: 'IPv6 address' });
export const Cidr = Type.String({ description: 'IPv4 or IPv6 address or prefix (CIDR)' });
export const Domain = Type.String({
  pattern:
    '^(\\*\\.)?([a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?\\.)*[a-zA-Z0-9_]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\\.?$',
  maxLength: 253,
  description: 'domain name; matches its subdomains too',
});
export const PortSpec = Type.String({
  pattern: '^[0-9]{1,5}(-[0-9]{1,5})?$',
  description: 'a port (443) or an inclusive range (1000-2000), 1 to 65535',
});
export const Timestamp = Type.String({ format: 'date-time', description: 'ISO 8601 date and time' });

export const InternetAccess = Type.Union(
  [Type.Literal('open'), Type.Literal('deny'), Type.Literal('allowlist-only')],
  {
    description: 'open: anything not denied; deny: nothing; allowlist-only: only allowed destinations',
  },
);
export type InternetAccess = Static<typeof InternetAccess>;

export const IpsMode = Type.Union([Type.Literal('off'), Type.Literal('ids'), Type.Literal('ips')]);
export const IpsFailure = Type.Union([Type.Literal('fail-open'), Type.Literal('fail-closed')]);
export const IpsSettings = Type.Object(
  {
    mode: IpsMode,
    failure: IpsFailure,
  },
  { additionalProperties: false },
);
export type IpsSettings = Static<typeof IpsSettings>;

export const RuleTarget = Type.Union([
  Type.Object({ cidr: Cidr }, { additionalProperties: false }),
  Type.Object({ domain: Domain }, { additionalProperties: false }),
  Type.Object({ vm: Name }, { additionalProperties: false }),
  Type.Object(
    { special: Type.Union([Type.Literal('dns'), Type.Literal('internet')]) },
    { additionalProperties: false },
  ),
]);
export type RuleTarget = Static<typeof RuleTarget>;

export const Rule = Type.Object(
  {
    id: Type.Optional(Type.String({ pattern: '^[a-zA-Z0-9_-]{1,64}$' })),
    action: Type.Union([Type.Literal('accept'), Type.Literal('reject'), Type.Literal('drop')]),
    to: RuleTarget,
    proto: Type.Optional(
      Type.Union([Type.Literal('any'), Type.Literal('tcp'), Type.Literal('udp'), Type.Literal('icmp')], {
        default: 'any',
      }),
    ),
    ports: Type.Optional(Type.Array(PortSpec, { maxItems: 64 })),
    icmpType: Type.Optional(
      Type.String({ pattern: '^[a-z-]+$', description: 'nft ICMP type name, e.g. echo-request' }),
    ),
    expires: Type.Optional(Timestamp),
    comment: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: false },
);
export type Rule = Static<typeof Rule>;

export const Weekday = Type.Union([
  Type.Literal('mon'),
  Type.Literal('tue'),
  Type.Literal('wed'),
  Type.Literal('thu'),
  Type.Literal('fri'),
  Type.Literal('sat'),
  Type.Literal('sun'),
]);
export type Weekday = Static<typeof Weekday>;
export const ClockTime = Type.String({
  pattern: '^([01][0-9]|2[0-3]):[0-5][0-9]$',
  description: 'HH:MM, 24-hour',
});

export const Window = Type.Object(
  {
    days: Type.Array(Weekday, { minItems: 1, uniqueItems: true, description: 'days the window starts on' }),
    start: ClockTime,
    end: Type.String({
      pattern: '^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$',
      description: 'HH:MM; before start means the next day',
    }),
  },
  { additionalProperties: false },
);
export type Window = Static<typeof Window>;

export const Schedule = Type.Object(
  {
    name: Name,
    /** VMs the schedule applies to, by name. */
    vms: Type.Array(Name, { minItems: 1 }),
    timezone: Type.String({ description: 'IANA time zone, e.g. Europe/Berlin', default: 'UTC' }),
    windows: Type.Array(Window, { minItems: 1, maxItems: 32 }),
    /** Only these services (DNS service lists) are affected; absent: the whole VM. */
    services: Type.Optional(
      Type.Array(Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,62}$' }), { maxItems: 64, uniqueItems: true }),
    ),
    /** What the VMs are switched to while a window is open. */
    mode: Type.Union([Type.Literal('deny'), Type.Literal('allowlist-only')]),
    enabled: Type.Optional(Type.Boolean({ default: true })),
  },
  { additionalProperties: false },
);
export type Schedule = Static<typeof Schedule>;

/** DNS filtering of a profile (the DNS filter's per-client policy, less the client name). */
export const DnsSettings = Type.Object(
  {
    paused: Type.Optional(Type.Boolean({ description: 'every name answers the block page' })),
    categories: Type.Optional(
      Type.Array(Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,62}$' }), {
        maxItems: 256,
        uniqueItems: true,
        description: 'blocked category lists',
      }),
    ),
    services: Type.Optional(
      Type.Array(Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,62}$' }), {
        maxItems: 256,
        uniqueItems: true,
        description: 'blocked service lists',
      }),
    ),
    allow: Type.Optional(
      Type.Array(Domain, { maxItems: 10000, description: 'always allowed names (and subdomains)' }),
    ),
    deny: Type.Optional(
      Type.Array(Domain, { maxItems: 10000, description: 'always blocked names (and subdomains)' }),
    ),
    allowlistOnly: Type.Optional(Type.Boolean()),
    safeSearch: Type.Optional(
      Type.Boolean({ description: 'rewrite search engines and YouTube to their safe endpoints' }),
    ),
    youtube: Type.Optional(Type.Union([Type.Literal('strict'), Type.Literal('moderate')])),
    blockDoh: Type.Optional(
      Type.Boolean({ description: 'answer known DNS-over-HTTPS endpoint names with NXDOMAIN' }),
    ),
  },
  { additionalProperties: false },
);
export type DnsSettings = Static<typeof DnsSettings>;

/** Parental controls of a profile, enforced in the kernel (DNS filtering is in `dns`). */
export const Parental = Type.Object(
  {
    /**
     * Close the ways around the filter: DNS over TLS/QUIC (853), QUIC (udp/443), known
     * DoH endpoints by address, VPN ports (WireGuard, OpenVPN, IPsec/IKE, ESP/AH),
     * Tor relays from the bundle list. Default false.
     */
    closeBypass: Type.Optional(Type.Boolean()),
    /** Slow the whole VM down to this rate, each direction, in kilobytes per second. */
    slowKbytes: Type.Optional(Type.Integer({ minimum: 8, maximum: 1_000_000 })),
    /** Slow these services down (by the addresses their names resolve to), kilobytes per second. */
    slowServices: Type.Optional(
      Type.Array(
        Type.Object(
          {
            service: Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,62}$' }),
            kbytes: Type.Integer({ minimum: 8, maximum: 1_000_000 }),
          },
          { additionalProperties: false },
        ),
        { maxItems: 64 },
      ),
    ),
    /** Minutes of active internet use a day; when spent, the VM is blocked until the daily reset. */
    dailyMinutes: Type.Optional(Type.Integer({ minimum: 0, maximum: 1440 })),
    /** A minute counts as active when the VM sent more than this many bytes in it. Default 20,000. */
    idleBytesPerMinute: Type.Optional(Type.Integer({ minimum: 0, maximum: 100_000_000 })),
    /** Time zone of the daily reset (midnight). Default UTC. */
    timezone: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);
export type Parental = Static<typeof Parental>;

export const Profile = Type.Object(
  {
    name: Name,
    description: Type.Optional(Type.String({ maxLength: 200 })),
    internet: InternetAccess,
    /** Ordered rules; the first that matches decides. */
    rules: Type.Array(Rule, { maxItems: 1000 }),
    /** Other VMs this VM may open connections to (all ports). */
    reach: Type.Array(Name, { maxItems: 256 }),
    /** May reach the corporate VPN endpoint set. */
    vpn: Type.Optional(Type.Boolean({ default: false })),
    /** Quarantine semantics: only DNS and update servers. */
    isolated: Type.Optional(Type.Boolean({ default: false })),
    ips: IpsSettings,
    /** Allowed domains for allowlist-only mode. */
    allowDomains: Type.Optional(Type.Array(Domain, { maxItems: 10000 })),
    /** DNS filtering: categories, services, SafeSearch, DoH names. */
    dns: Type.Optional(DnsSettings),
    /** Parental controls in the kernel: bypass closing, slow down, daily budget. */
    parental: Type.Optional(Parental),
    /** Reactions to IPS alerts of this profile's VMs; absent: the built-in defaults. */
    alerts: Type.Optional(AlertActions),
  },
  { additionalProperties: false },
);
export type Profile = Static<typeof Profile>;

export const Vm = Type.Object(
  {
    name: Name,
    mac: Mac,
    ipv4: Ipv4,
    ipv6: Type.Optional(Ipv6),
    /**
     * The port the VM is on. Absent: the VM is identified by its MAC and IPv4 alone, on
     * any port (a layout without per-guest ports): another guest can take both while it
     * is off. Give every VM its port.
     */
    port: Type.Optional(Port),
    profile: Name,
    owner: Type.Optional(Name),
    notes: Type.Optional(Type.String({ maxLength: 500 })),
    /** Rules that go before the profile's. */
    rules: Type.Optional(Type.Array(Rule, { maxItems: 1000 })),
    /** Set while the VM's internet is paused: until a time, or (no `until`) until resumed. */
    pause: Type.Optional(
      Type.Object(
        {
          since: Timestamp,
          until: Type.Optional(Timestamp),
          reason: Type.Optional(Type.String({ maxLength: 200 })),
        },
        { additionalProperties: false },
      ),
    ),
    /** Set while the VM is quarantined, with the reason. */
    quarantine: Type.Optional(
      Type.Object(
        { reason: Type.String({ minLength: 1, maxLength: 500 }), since: Timestamp },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type Vm = Static<typeof Vm>;

export const Policy = Type.Object(
  {
    vms: Type.Array(Vm, { maxItems: 1024 }),
    profiles: Type.Array(Profile, {
      maxItems: 256,
      description: 'custom profiles; built-ins are always present',
    }),
    schedules: Type.Array(Schedule, { maxItems: 1024 }),
    /** Corporate VPN endpoints, reachable only by profiles with `vpn: true`. */
    vpnEndpoints: Type.Array(Cidr, { maxItems: 1024 }),
    /** Update servers, reachable even in quarantine. */
    updateServers: Type.Array(Cidr, { maxItems: 1024 }),
    /** Global deny list (CIDRs), for every VM. */
    deny: Type.Optional(Type.Array(Cidr)),
    /** Let guests use IPv6 through the gateway. Off: all guest IPv6 is dropped. */
    ipv6: Type.Boolean({ default: false }),
  },
  { additionalProperties: false },
);
export type Policy = Static<typeof Policy>;

export function emptyPolicy(): Policy {
  return { vms: [], profiles: [], schedules: [], vpnEndpoints: [], updateServers: [], ipv6: false };
}
