import { Type, type Static } from 'typebox';

/**
 * The appliance's own network: which interface faces the guests, the uplink and
 * management. Part of the service configuration, not of the policy.
 */
export const GatewayNetwork = Type.Object(
  {
    lan: Type.Object(
      {
        iface: Type.String({ description: 'interface facing the guests', default: 'lan0' }),
        ipv4: Type.String({ description: "the appliance's address on the guest LAN (gateway, DNS)" }),
        prefix: Type.Integer({ minimum: 8, maximum: 30, description: 'guest LAN prefix length' }),
        ipv6: Type.Optional(Type.String({ description: "the appliance's IPv6 address on the guest LAN" })),
      },
      { additionalProperties: false },
    ),
    wan: Type.Object({ iface: Type.String({ default: 'wan0' }) }, { additionalProperties: false }),
    mgmt: Type.Object(
      {
        iface: Type.String({ default: 'mgmt0' }),
        /** TCP ports open on the management side (API/dashboard, SSH). */
        ports: Type.Array(Type.Integer({ minimum: 1, maximum: 65535 }), { default: [8080, 22] }),
      },
      { additionalProperties: false },
    ),
    /** TCP port of the block page on the LAN address; 0 disables it. Default 80. */
    blockPagePort: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
    /**
     * UDP DNS packets a second one guest address may send to the appliance; the rest
     * are dropped in the kernel (`dns_flood_dropped`) before the DNS filter reads them.
     * 0: no kernel limit. Default {@link DNS_FLOOD_RATE} (twice the DNS filter's own
     * per-client rate, `dns.limits.queriesPerSecond` 300, which cuts below it).
     */
    dnsFloodRate: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
  },
  { additionalProperties: false },
);
export type GatewayNetwork = Static<typeof GatewayNetwork>;

/** UDP DNS packets a second a guest address may send before the kernel drops them, by default. */
export const DNS_FLOOD_RATE = 600;
