import { readFileSync } from 'node:fs';
import { Type, type Static } from 'typebox';
import { Value } from 'typebox/value';
import { parse as parseYaml } from 'yaml';
import { invalid, PortcullisError } from './errors.js';
import { GatewayNetwork } from './policy/network.js';
import { schemaIssues } from './schema.js';

/** The service configuration (`portcullis serve --config FILE`), YAML. */
export const Config = Type.Object(
  {
    network: GatewayNetwork,
    api: Type.Object(
      {
        /** Address to listen on: the management address, never one a guest reaches. */
        listen: Type.String(),
        port: Type.Integer({ minimum: 1, maximum: 65535, default: 8080 }),
        /**
         * Legacy: one admin API token written in the config (the image's seed sets it).
         * Prefer tokens from `portcullis token create`, which are stored hashed,
         * expire and can be revoked. Unset: none.
         */
        token: Type.Optional(Type.String({ minLength: 16 })),
        /**
         * Other names and addresses the management listener is reached by (a DNS
         * name, a forwarded address). Requests whose Host header names anything else
         * than these, the listen address or loopback are refused (421). Default none.
         */
        names: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 253 }))),
        /**
         * TLS on the management listener. Default on, with a self-signed certificate
         * made at first start in `<dataDir>/tls/` (`portcullis tls fingerprint` prints
         * its fingerprint); `cert` and `key` name the admin's own PEM files instead.
         */
        tls: Type.Optional(
          Type.Object(
            {
              enabled: Type.Boolean({ default: true }),
              cert: Type.Optional(Type.String()),
              key: Type.Optional(Type.String()),
            },
            { additionalProperties: false },
          ),
        ),
        /** Login sessions: minutes unused before one ends (default 60), hours at most (default 12). */
        session: Type.Optional(
          Type.Object(
            {
              idleMinutes: Type.Integer({ minimum: 1, maximum: 10080, default: 60 }),
              absoluteHours: Type.Integer({ minimum: 1, maximum: 720, default: 12 }),
            },
            { additionalProperties: false },
          ),
        ),
        /**
         * Logins allowed per client address per minute (default 10), and failed
         * logins per user name per minute before that name is refused (default 5).
         */
        loginLimits: Type.Optional(
          Type.Object(
            {
              perAddress: Type.Integer({ minimum: 1, maximum: 10000, default: 10 }),
              failuresPerUser: Type.Integer({ minimum: 1, maximum: 1000, default: 5 }),
            },
            { additionalProperties: false },
          ),
        ),
        /** Client addresses that may read /metrics without a token (a Prometheus). Default none. */
        metricsScrapers: Type.Optional(Type.Array(Type.String())),
      },
      { additionalProperties: false },
    ),
    dns: Type.Object(
      {
        /** Addresses the DNS filter answers on (the LAN address). */
        listen: Type.Array(Type.String(), { minItems: 1 }),
        port: Type.Integer({ minimum: 1, maximum: 65535, default: 53 }),
        /** Upstream resolvers, tried in order. */
        upstream: Type.Array(Type.String(), { minItems: 1 }),
        /** Domain lists laid out as rules/lists/ (categories/, services/, doh.txt). */
        listsDir: Type.Optional(Type.String()),
        /** SafeSearch endpoints to use instead of the real ones (a lab test host). */
        safeSearchTargets: Type.Optional(Type.Record(Type.String(), Type.String())),
        /**
         * Names (and subdomains) allowed to resolve to internal addresses; every other
         * upstream answer with a LAN, loopback or private address is answered NODATA
         * (DNS-rebinding protection). Default none.
         */
        internalNames: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 253 }))),
        /**
         * Per-client limits, so that one guest's flood leaves the others' look-ups fast.
         * Defaults: 300 queries/s (burst 600) per client, of which 50/s (burst 100) may
         * miss the cache, 64 upstream look-ups waiting, 8 TCP connections; 0 turns a
         * rate or upstream limit off.
         */
        limits: Type.Optional(
          Type.Object(
            {
              queriesPerSecond: Type.Integer({ minimum: 0, default: 300 }),
              burst: Type.Optional(Type.Integer({ minimum: 1 })),
              maxUpstream: Type.Integer({ minimum: 0, default: 64 }),
              upstreamPerSecond: Type.Integer({ minimum: 0, default: 50 }),
              tcpPerClient: Type.Integer({ minimum: 1, maximum: 256, default: 8 }),
            },
            { additionalProperties: false },
          ),
        ),
      },
      { additionalProperties: false },
    ),
    dhcp: Type.Object(
      {
        enabled: Type.Boolean({ default: true }),
        /** Lease time, dnsmasq syntax (12h). */
        leaseTime: Type.String({ default: '12h' }),
        /**
         * Addresses handed to unknown MACs (first-last, e.g. 10.20.0.200-10.20.0.249):
         * such a device gets DHCP and the block page, nothing else, until it is assigned.
         */
        unassignedRange: Type.Optional(
          Type.String({ pattern: '^\\d+\\.\\d+\\.\\d+\\.\\d+-\\d+\\.\\d+\\.\\d+\\.\\d+$' }),
        ),
        /** Lease time in the unassigned pool, dnsmasq syntax (at least 2m). Default 10m. */
        unassignedLeaseTime: Type.Optional(Type.String({ pattern: '^\\d+[mh]$' })),
        /**
         * Unknown devices (MACs no VM has) a guest port may have at a time, 1-1000: a
         * guest inventing MACs holds at most this many leases of the pool. The ports
         * without a VM share one such allowance. Default 4.
         */
        unknownPerPort: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
      },
      { additionalProperties: false },
    ),
    /** Where the SQLite database, DHCP files and rule bundles live. */
    dataDir: Type.String(),
    /**
     * How Suricata and dnsmasq run: `direct`, as the service's own children, under its
     * user (the lab, development, tests; default); `systemd`, each in its own unit under
     * its own user (the appliance: appliance/systemd/portcullis-suricata@.service,
     * portcullis-dnsmasq.service and the polkit rule that lets the service manage them).
     */
    processes: Type.Optional(
      Type.Object(
        { runner: Type.Union([Type.Literal('direct'), Type.Literal('systemd')], { default: 'direct' }) },
        { additionalProperties: false },
      ),
    ),
    /** Address lists from rule bundles (one address or CIDR a line), denied for every VM. */
    lists: Type.Optional(
      Type.Object({ deny: Type.Array(Type.String(), { default: [] }) }, { additionalProperties: false }),
    ),
    /** Address lists of the ways around the filter (DoH resolvers, Tor relays, VPN providers' endpoints). */
    bypass: Type.Optional(
      Type.Object(
        {
          doh: Type.Array(Type.String(), { default: [] }),
          tor: Type.Array(Type.String(), { default: [] }),
          vpn: Type.Optional(Type.Array(Type.String())),
        },
        { additionalProperties: false },
      ),
    ),
    parental: Type.Optional(
      Type.Object(
        {
          /** Seconds between samples of the VMs' traffic counters for time budgets. Default 60. */
          sampleSeconds: Type.Integer({ minimum: 1, maximum: 600, default: 60 }),
          /** "Ask a parent" limits, per VM, for the block page and the API alike. */
          accessRequests: Type.Optional(
            Type.Object(
              {
                /** Pending requests one VM may have. Default 20. */
                maxPending: Type.Integer({ minimum: 1, maximum: 1000, default: 20 }),
                /** New requests one VM may make per hour. Default 30. */
                perHour: Type.Integer({ minimum: 1, maximum: 3600, default: 30 }),
                /** New requests in a row before the hourly rate applies. Default 5. */
                burst: Type.Integer({ minimum: 1, maximum: 100, default: 5 }),
              },
              { additionalProperties: false },
            ),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    suricata: Type.Optional(
      Type.Object(
        {
          /** Run Suricata inline for VMs whose profile has IPS mode `ips`. */
          enabled: Type.Boolean({ default: true }),
          /** NFQUEUE number. Default 0. */
          queue: Type.Integer({ minimum: 0, maximum: 65535, default: 0 }),
          /** Rule files, in order (the installed bundle's, then local rules). */
          ruleFiles: Type.Array(Type.String(), { minItems: 1 }),
          /**
           * Addresses and prefixes the IPS never blocks, besides the upstream resolvers,
           * the management address and the policy's update servers (always protected).
           */
          neverBlock: Type.Optional(Type.Array(Type.String())),
          /** Let Suricata bypass flows it is done with (stream depth reached, TLS encrypted). Default true. */
          bypass: Type.Boolean({ default: true }),
          /** `nft` queue statement or the xtables NFQUEUE target; `auto` detects. Default auto. */
          queueKind: Type.Union([Type.Literal('auto'), Type.Literal('nft'), Type.Literal('xt')], {
            default: 'auto',
          }),
          /**
           * Build the engine of a rule reload in the idle CPU class where the kernel has one
           * (process/idle-cpu.ts): the reload yields to all other work and takes longer.
           * false: nice 19 only. Default true.
           */
          reloadIdleCpu: Type.Boolean({ default: true }),
        },
        { additionalProperties: false },
      ),
    ),
    /** How long access requests and audit entries are kept (trimmed hourly by age and count). */
    retention: Type.Optional(
      Type.Object(
        {
          /** Days; approvals still in force are kept regardless. Default 90. */
          accessRequestDays: Type.Integer({ minimum: 1, default: 90 }),
          accessRequestMax: Type.Integer({ minimum: 1, default: 5000 }),
          /** Days. Default 365. */
          auditDays: Type.Integer({ minimum: 1, default: 365 }),
          auditMax: Type.Integer({ minimum: 1, default: 200_000 }),
        },
        { additionalProperties: false },
      ),
    ),
    /**
     * Vendor rule updates (signed bundles over TUF, rules/README.md). Absent: the service
     * reads its rules and lists from the paths above only.
     */
    bundles: Type.Optional(
      Type.Object(
        {
          /** The vendor's TUF repository: an https URL, or a folder (a copy on a USB stick). */
          source: Type.String({ minLength: 1 }),
          /** The root of trust shipped with the appliance (the vendor's 1.root.json). */
          trustedRoot: Type.String({ minLength: 1 }),
          /** Bundle name. Default portcullis-default. */
          name: Type.String({ default: 'portcullis-default' }),
          /** Channel. Default stable. */
          channel: Type.String({ default: 'stable' }),
          /** Seconds between polls; 0: only on demand (API, CLI). Default 21,600 (6 h). */
          pollSeconds: Type.Integer({ minimum: 0, default: 21_600 }),
          /** Up to this many seconds added at random to each poll. Default 1,800. */
          jitterSeconds: Type.Integer({ minimum: 0, default: 1800 }),
          /** Versions kept on disk for rollback. Default 3. */
          keep: Type.Integer({ minimum: 1, maximum: 20, default: 3 }),
          /** Seconds the health check watches Suricata after a switch. Default 5. */
          healthSeconds: Type.Number({ minimum: 0.5, maximum: 300, default: 5 }),
          /**
           * PEM file of a CA the repository's HTTPS certificate chains to, trusted besides
           * Node's public roots (a vendor with a private CA; the lab). TLS only protects the
           * transport: TUF's signatures are what the appliance trusts.
           */
          caFile: Type.Optional(Type.String()),
          /** Largest bundle downloaded, MiB. Default 64. */
          maxDownloadMiB: Type.Integer({ minimum: 1, maximum: 4096, default: 64 }),
        },
        { additionalProperties: false },
      ),
    ),
    /**
     * Packet captures (`/captures`, admins only) with tcpdump, kept in `<dataDir>/captures/`.
     * Absent: the defaults below.
     */
    capture: Type.Optional(
      Type.Object(
        {
          /** Longest capture, seconds. Default 300. */
          maxSeconds: Type.Integer({ minimum: 1, maximum: 3600, default: 300 }),
          /** Largest capture file, MiB (a request may ask for less). Default 50. */
          maxMiB: Type.Integer({ minimum: 1, maximum: 4096, default: 50 }),
          /** Captures running at once. Default 2. */
          concurrent: Type.Integer({ minimum: 1, maximum: 16, default: 2 }),
          /** Capture files kept; the oldest goes first. Default 20. */
          keep: Type.Integer({ minimum: 1, maximum: 1000, default: 20 }),
          /** The tcpdump binary. Default `tcpdump` (on PATH). */
          tcpdump: Type.String({ minLength: 1, default: 'tcpdump' }),
        },
        { additionalProperties: false },
      ),
    ),
    /** Policy YAML to seed an empty store with. */
    policyFile: Type.Optional(Type.String()),
    nft: Type.Object(
      {
        backend: Type.Union([Type.Literal('auto'), Type.Literal('libnftables'), Type.Literal('nft-cli')], {
          default: 'auto',
        }),
        /** Seconds between drift checks of the kernel table; 0 disables. Default 10. */
        driftInterval: Type.Integer({ minimum: 0, default: 10 }),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);
export type Config = Static<typeof Config>;

/** Load and check a config file; every problem is reported as `path: message`. */
export function loadConfig(file: string): Config {
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(file, 'utf8'));
  } catch (cause) {
    throw new PortcullisError('CONFIG_INVALID', `cannot read config ${file}: ${(cause as Error).message}`, {
      cause,
    });
  }
  const withDefaults = Value.Default(Config, Value.Clone(doc));
  const issues = schemaIssues(Config, withDefaults);
  if (issues.length > 0) throw invalid('CONFIG_INVALID', `config ${file} is invalid`, issues);
  return withDefaults as Config;
}
