import { readFileSync } from 'node:fs';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { parse as parseYaml } from 'yaml';
import { invalid, PortcullisError } from './errors.js';
import { GatewayNetwork } from './policy/network.js';

/** The service configuration (`portcullis serve --config FILE`), YAML. */
export const Config = Type.Object(
  {
    network: GatewayNetwork,
    api: Type.Object(
      {
        /** Address to listen on: the management address, never one a guest reaches. */
        listen: Type.String(),
        port: Type.Integer({ minimum: 1, maximum: 65535, default: 8080 }),
        /** Bearer token required on mutating requests; unset: none. */
        token: Type.Optional(Type.String({ minLength: 16 })),
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
      },
      { additionalProperties: false },
    ),
    dhcp: Type.Object(
      {
        enabled: Type.Boolean({ default: true }),
        /** Lease time, dnsmasq syntax (12h). */
        leaseTime: Type.String({ default: '12h' }),
      },
      { additionalProperties: false },
    ),
    /** Where the SQLite database, DHCP files and rule bundles live. */
    dataDir: Type.String(),
    /** Address lists from rule bundles (one address or CIDR a line), denied for every VM. */
    lists: Type.Optional(
      Type.Object({ deny: Type.Array(Type.String(), { default: [] }) }, { additionalProperties: false }),
    ),
    /** Policy YAML to seed an empty store with. */
    policyFile: Type.Optional(Type.String()),
    nft: Type.Object(
      {
        backend: Type.Union([Type.Literal('auto'), Type.Literal('libnftables'), Type.Literal('nft-cli')], { default: 'auto' }),
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
    throw new PortcullisError('CONFIG_INVALID', `cannot read config ${file}: ${(cause as Error).message}`, { cause });
  }
  const withDefaults = Value.Default(Config, Value.Clone(doc));
  const issues = [...Value.Errors(Config, withDefaults)].map((e) => ({ path: e.path, message: e.message }));
  if (issues.length > 0) throw invalid('CONFIG_INVALID', `config ${file} is invalid`, issues);
  return withDefaults as Config;
}
