import { readFileSync } from 'node:fs';
import { Type, type Static } from 'typebox';
import { parse as parseYaml } from 'yaml';
import { invalid } from '../../gateway/src/errors.js';
import { schemaIssues } from '../../gateway/src/schema.js';
import { Mac, Name, Port } from '../../gateway/src/policy/model.js';

/** The lab topology file (appliance/lab/lab.yaml). */
export const LabTopology = Type.Object({
  lan: Type.Object({ subnet: Type.String(), gateway: Type.String(), unassigned: Type.String() }),
  wan: Type.Object({ secvm: Type.String(), router: Type.String() }),
  mgmt: Type.Object({ host: Type.String(), secvm: Type.String() }),
  api: Type.Object({
    port: Type.Integer({ minimum: 1, maximum: 65535 }),
    localPort: Type.Integer({ minimum: 1, maximum: 65535 }),
  }),
  internet: Type.Object({
    resolver: Type.String(),
    altResolver: Type.String(),
    web: Type.String(),
    vpn: Type.String(),
    update: Type.String(),
    doh: Type.String(),
    torRelay: Type.String(),
    /** The rule vendor: its TUF repository over HTTPS (default 203.0.113.60). */
    vendor: Type.Optional(Type.String()),
    safeSearch: Type.Record(Type.String(), Type.String()),
    hosts: Type.Record(Type.String(), Type.String()),
  }),
  guests: Type.Array(
    Type.Object({
      name: Name,
      mac: Mac,
      ipv4: Type.String(),
      profile: Name,
      ipv6: Type.Optional(Type.String()),
      /** The guest's port on secvm's guest bridge (default `g-<name>`, cut to 15 characters). */
      port: Type.Optional(Port),
    }),
    { minItems: 1, maxItems: 64 },
  ),
});
export type LabTopology = Static<typeof LabTopology>;

export function loadTopology(file: string): LabTopology {
  const doc: unknown = parseYaml(readFileSync(file, 'utf8'));
  const issues = schemaIssues(LabTopology, doc);
  if (issues.length > 0) throw invalid('CONFIG_INVALID', `lab topology ${file} is invalid`, issues);
  return doc as LabTopology;
}

/**
 * Prefix of the lab's namespace names (PORTCULLIS_LAB_NS_PREFIX, default none), so
 * that two labs can stand side by side on one machine (a developer's and a test run).
 */
export const NS_PREFIX = process.env.PORTCULLIS_LAB_NS_PREFIX ?? '';

/** The namespace of a lab host (`kid`, `secvm` …). */
export function ns(name: string): string {
  return `${NS_PREFIX}${name}`;
}

/** A guest's port on secvm's guest bridge `lan0`: where its link ends. */
export function guestPort(g: { readonly name: string; readonly port?: string }): string {
  return g.port ?? `g-${g.name}`.slice(0, 15);
}

/** Namespace names of a topology, in the order they are built. */
export function namespaces(t: LabTopology): string[] {
  return ['host', 'secvm', 'internet', ...t.guests.map((g) => g.name)].map(ns);
}
