import { createHash } from 'node:crypto';
import { isIP, isIPv4 } from 'node:net';
import { join } from 'node:path';
import { domainToASCII } from 'node:url';
import { effectiveProfiles } from '../policy/builtins.js';
import { profileInForce } from '../policy/in-force.js';
import type { Policy, Profile, Vm } from '../policy/model.js';

/**
 * The DNS filter's lists in the data path (pure): Suricata material that makes the
 * names a profile blocks by DNS blocked in the traffic as well, for a guest that learned
 * an address elsewhere (a hosts file, another resolver, DoH, a proxy). One place turns
 * a profile's lists into names ({@link blockedNames}); {@link renderSuricataPolicy}
 * turns a policy and the lists into one rule file and the datasets it loads. The
 * bundle switch calls it again with the new bundle's lists.
 *
 * - Names: per profile, one Suricata string dataset of the names of its blocked
 *   categories, services and `dns.deny` (a listed name covers its subdomains, as in the
 *   DNS filter). A rule per label count takes the SNI / Host's last k labels
 *   (`pcrexform`) and looks them up, so a million names cost a hash lookup per label
 *   count, not a million patterns (measured: README design notes). A blocked TLS name
 *   is reset both ways; blocked plain HTTP resets the server, and the service answers
 *   the guest with a redirect to the block page (block-response.ts).
 * - Scope: the rules' source is the addresses of the VMs whose profile in force has the
 *   lists and IPS mode `ips` (Suricata sees only those VMs' traffic inline anyway).
 * - Allowed names (`dns.allow`, `allowDomains`, accepted domain rules, approved
 *   requests) get `pass` rules for that VM: pass wins over reject, as in the DNS filter.
 * - `parental.closeBypass`: DNS on a port other than 53, TLS-less or non-HTTP traffic
 *   on 443 and 80, SSH, OpenVPN- and WireGuard-like handshakes on any port are dropped.
 * - `dns.blockDoh`: TLS to a known DoH name (SNI), or to a DoH provider's address.
 *
 * Alerts have priority 3: recorded and shown per VM, never a block of the remote host
 * (a CDN address serves many names) nor a quarantine.
 */

/** Domain lists by name, as `rules/lists/` lays them out: the names of each list. */
export interface NameLists {
  readonly categories: ReadonlyMap<string, readonly string[]>;
  readonly services: ReadonlyMap<string, readonly string[]>;
  /** DNS-over-HTTPS resolver names (`doh.txt`). */
  readonly doh: readonly string[];
  /** DNS-over-HTTPS resolver addresses (the bypass lists): IPv4 addresses; CIDRs are skipped. */
  readonly dohAddresses: readonly string[];
}

/** No lists (a service without `dns.listsDir`). */
export const EMPTY_NAME_LISTS: NameLists = {
  categories: new Map(),
  services: new Map(),
  doh: [],
  dohAddresses: [],
};

/** One dataset file the rules load. */
export interface DatasetFile {
  /** Suricata's dataset name (the content's hash is part of it: a changed list is a new set). */
  readonly name: string;
  /** Absolute path; the rules load it from there. */
  readonly file: string;
  readonly type: 'string' | 'ipv4';
  /** One entry a line: base64 for strings, dotted quads for addresses. */
  readonly content: string;
  readonly count: number;
}

/** A set of names as a dataset, with the label counts its names have. */
export interface NameSet {
  readonly set: DatasetFile;
  readonly labelCounts: readonly number[];
}

/** What {@link renderSuricataPolicy} produces. */
export interface SuricataPolicyMaterial {
  /** The rule file's text. */
  readonly rules: string;
  readonly datasets: readonly DatasetFile[];
  /** Rules in `rules` (comments excluded). */
  readonly ruleCount: number;
}

export interface RenderOptions {
  /** Absolute directory the dataset files are written to. */
  readonly dir: string;
  /** The instant accepted rules' expiry is judged at. */
  readonly at: Date;
  /** First sid of the generated rules. Default {@link POLICY_SID_BASE}. */
  readonly sidBase?: number;
  /**
   * Datasets already built from the same `lists`, by what they were built from: a
   * policy change then costs no pass over a million names. The caller clears it when
   * the lists change.
   */
  readonly cache?: Map<string, NameSet>;
}

/** The rule metadata (`metadata:portcullis block-page;`) of the rules whose alerts get the block page (block-response.ts). */
export const BLOCK_PAGE_METADATA = 'block-page';

/** Generated rules use sids from here (local rules 1000000-1999999, vendor 3000000-3999999). */
export const POLICY_SID_BASE = 4_000_000;

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/**
 * A line that is already a name as {@link normalizeName} returns it (lower-case labels by
 * LABEL, a top label not all digits, at most 253 characters).
 */
const PLAIN_NAME =
  /^(?=.{1,253}$)(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*(?![0-9]+$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/**
 * A name as the DNS filter stores it: lower case, punycode, no `*.` / leading or
 * trailing dot; undefined when it is no domain name (an address, an all-digit top label).
 */
export function normalizeName(raw: string): string | undefined {
  let s = raw.trim().toLowerCase();
  if (s.startsWith('*.')) s = s.slice(2);
  else if (s.startsWith('.')) s = s.slice(1);
  if (s.endsWith('.')) s = s.slice(0, -1);
  if (/[^\x20-\x7e]/.test(s)) s = domainToASCII(s).toLowerCase();
  if (s.length === 0 || s.length > 253) return undefined;
  const labels = s.split('.');
  if (!labels.every((l) => LABEL.test(l))) return undefined;
  if (/^[0-9]+$/.test(labels[labels.length - 1]!)) return undefined;
  return s;
}

/**
 * The names of one list file's text, in the formats the DNS filter reads
 * (gateway/src/dns/lists.ts): a domain a line, hosts lines (`0.0.0.0 name …`), adblock
 * `||name^`; `#` and `!` comments. Lines that are none of these are skipped (the DNS
 * filter's loader rejects a file with too many of them before it gets here).
 */
export function parseListNames(text: string): string[] {
  const out: string[] = [];
  for (const rawLine of text.split('\n')) {
    // most lines of a big list are a bare, lower-case name: one check, no copies
    if (PLAIN_NAME.test(rawLine)) {
      if (rawLine !== 'localhost' && rawLine !== 'localhost.localdomain') out.push(rawLine);
      continue;
    }
    let line = rawLine.replace(/(^|\s)#.*$/, '').trim();
    if (line === '' || line.startsWith('!') || line.startsWith('[')) continue;
    if (line.startsWith('||')) {
      if (!line.endsWith('^')) continue;
      line = line.slice(2, -1);
    }
    const tokens = line.split(/\s+/);
    // more than one token: a hosts line, whose first token is an address
    if (tokens.length > 1 && isIP(tokens[0]!) === 0) continue;
    const names = tokens.length > 1 ? tokens.slice(1) : tokens;
    for (const t of names) {
      const n = normalizeName(t);
      if (n !== undefined && n !== 'localhost' && n !== 'localhost.localdomain') out.push(n);
    }
  }
  return out;
}

/**
 * The names a profile blocks by its lists: its blocked categories, services and
 * `dns.deny`, each covering its subdomains. Sorted, without duplicates. A list the
 * profile names but `lists` lacks contributes nothing (the DNS filter blocks nothing
 * for it either).
 */
export function blockedNames(profile: Profile, lists: NameLists): string[] {
  const dns = profile.dns;
  if (!dns) return [];
  // sorted, then duplicates dropped: a million names, no Set of them (measured: half the time)
  const all: string[] = [];
  const add = (names: readonly string[]): void => {
    for (const n of names) all.push(n);
  };
  for (const c of dns.categories ?? []) add(lists.categories.get(c) ?? []);
  for (const s of dns.services ?? []) add(lists.services.get(s) ?? []);
  for (const d of dns.deny ?? []) {
    const n = normalizeName(d);
    if (n !== undefined) all.push(n);
  }
  all.sort();
  let w = 0;
  for (let i = 0; i < all.length; i++) if (i === 0 || all[i] !== all[w - 1]) all[w++] = all[i]!;
  all.length = w;
  return all;
}

/** Names that resolve for a VM whatever the lists say (the DNS filter's `allow`). */
function allowedNames(vm: Vm, profile: Profile, at: Date): string[] {
  const now = at.getTime();
  const accepted = [...(vm.rules ?? []), ...profile.rules]
    .filter((r) => r.action === 'accept' && 'domain' in r.to && (!r.expires || Date.parse(r.expires) > now))
    .map((r) => (r.to as { domain: string }).domain);
  const all = [...(profile.dns?.allow ?? []), ...(profile.allowDomains ?? []), ...accepted];
  return [...new Set(all.map(normalizeName).filter((n): n is string => n !== undefined))].sort();
}

const hash8 = (s: string): string => createHash('sha256').update(s).digest('hex').slice(0, 12);

/** A rule's header address list: `[a,b]`, or the single address. */
const addressGroup = (addresses: readonly string[]): string =>
  addresses.length === 1 ? addresses[0]! : `[${addresses.join(',')}]`;

/** A dataset's `hashsize`: a power of two near a quarter of its entries, 1,024 to 262,144 (Suricata's per-set limit). */
function hashsize(count: number): number {
  let h = 1024;
  while (h < count / 4 && h < 262_144) h *= 2;
  return h;
}

/** A dataset's `memcap` in bytes: measured ~140 bytes an entry (1,000,000 names: 140 MB), doubled, at least 16 MiB. */
const memcap = (count: number): number => Math.max(16 << 20, count * 280);

/** `(?:^|\.)` then the last `k` labels, with an optional port (an HTTP Host or CONNECT target). */
const lastLabels = (k: number): string => `(?:^|\\.)((?:[^.:]+\\.){${k - 1}}[^.:]+)(?::[0-9]+)?$`;

/**
 * The buffer is exactly `k` labels: what {@link lastLabels} leaves when it matched.
 * pcrexform leaves a buffer it does not match as it was, so without this a name of
 * fewer labels would be looked up whole by the rule of every larger count as well: one
 * alert each for the same packet.
 */
const exactLabels = (k: number): string => `/^(?:[^.:]+\\.){${k - 1}}[^.:]+$/`;

const labelCount = (n: string): number => {
  let k = 1;
  for (let i = n.indexOf('.'); i >= 0; i = n.indexOf('.', i + 1)) k++;
  return k;
};

/** Each name base64-encoded, one a line (the dataset file's content), without a Buffer per name. */
function base64Lines(names: readonly string[]): string {
  const joined = Buffer.from(names.join('\n'));
  const out: string[] = new Array<string>(names.length);
  let at = 0;
  for (let i = 0; i < names.length; i++) {
    const end = at + Buffer.byteLength(names[i]!);
    out[i] = joined.toString('base64', at, end);
    at = end + 1;
  }
  return out.join('\n') + '\n';
}

/** A content literal for a rule: `"` `;` `\` and `|` escaped as hex. */
const literal = (s: string): string =>
  s.replace(/[";\\|]/g, (c) => `|${c.charCodeAt(0).toString(16).padStart(2, '0')}|`);

/**
 * The Suricata material of a policy (pure, deterministic): one rule file and its
 * datasets. Profiles get it while inline (IPS mode `ips`); a quarantined VM is in the
 * quarantine profile.
 */
export function renderSuricataPolicy(
  policy: Policy,
  lists: NameLists,
  options: RenderOptions,
): SuricataPolicyMaterial {
  const profiles = effectiveProfiles(policy.profiles);
  /** Inline VMs by the profile in force. */
  const byProfile = new Map<string, { profile: Profile; vms: Vm[] }>();
  for (const vm of policy.vms) {
    const profile = profileInForce(vm, profiles);
    if (profile.ips.mode !== 'ips') continue;
    const entry = byProfile.get(profile.name) ?? { profile, vms: [] };
    entry.vms.push(vm);
    byProfile.set(profile.name, entry);
  }
  let sid = options.sidBase ?? POLICY_SID_BASE;
  const lines: string[] = [
    '# Generated by portcullis (gateway/src/suricata/names.ts) from the policy and the DNS lists; do not edit.',
  ];
  const datasets: DatasetFile[] = [];
  let ruleCount = 0;
  const rule = (action: string, header: string, msg: string, options: string): void => {
    lines.push(
      `${action} ${header} (msg:"PORTCULLIS ${msg}"; ${options} classtype:policy-violation; priority:3; sid:${sid++}; rev:1;)`,
    );
    ruleCount++;
  };
  const cache = options.cache ?? new Map<string, NameSet>();
  const stringSet = (prefix: string, key: string, build: () => readonly string[]): NameSet | undefined => {
    let entry = cache.get(`${prefix}\0${key}`);
    if (!entry) {
      const names = build();
      if (names.length === 0) return undefined;
      const content = base64Lines(names);
      const name = `${prefix}-${hash8(content)}`;
      const set: DatasetFile = {
        name,
        file: join(options.dir, `${name}.lst`),
        type: 'string',
        content,
        count: names.length,
      };
      const counts = new Set<number>();
      for (const n of names) counts.add(labelCount(n));
      entry = { set, labelCounts: [...counts].sort((a, b) => a - b) };
      cache.set(`${prefix}\0${key}`, entry);
    }
    if (!datasets.some((d) => d.name === entry.set.name)) datasets.push(entry.set);
    return entry;
  };
  const lookup = (d: DatasetFile): string =>
    `dataset:isset,${d.name},type ${d.type},load ${d.file},memcap ${memcap(d.count)},hashsize ${hashsize(d.count)};`;
  /** One rule per label count present: the buffer's last k labels looked up in the set. */
  const nameRules = (
    action: string,
    header: string,
    msg: string,
    buffer: string,
    names: NameSet,
    extra = '',
  ): void => {
    for (const k of names.labelCounts)
      rule(
        action,
        header,
        msg,
        `flow:established,to_server; ${buffer}; pcrexform:"${lastLabels(k)}"; pcre:"${exactLabels(k)}"; ${lookup(names.set)}${extra}`,
      );
  };

  for (const { profile, vms } of [...byProfile.values()].sort((a, b) =>
    a.profile.name.localeCompare(b.profile.name),
  )) {
    const addrs = vms.flatMap((v) => (v.ipv6 ? [v.ipv4, v.ipv6] : [v.ipv4])).sort();
    const src = addressGroup(addrs);
    const dns = profile.dns ?? {};
    const key = JSON.stringify([dns.categories ?? [], dns.services ?? [], dns.deny ?? []]);
    const names = stringSet(`pc-names-${profile.name}`, key, () => blockedNames(profile, lists));
    const doh = dns.blockDoh
      ? stringSet('pc-doh-names', '', () => [...new Set(lists.doh)].sort())
      : undefined;
    const closeBypass = profile.parental?.closeBypass ?? false;
    if (!names && !doh && !closeBypass) continue;
    lines.push('', `# profile ${profile.name}: ${vms.map((v) => v.name).join(', ')}`);

    // allowed names first: pass wins over reject (Suricata's action order), per VM
    for (const vm of vms) {
      const allowed = allowedNames(vm, profile, options.at);
      if (allowed.length === 0 || (!names && !doh)) continue;
      const vmSrc = addressGroup(vm.ipv6 ? [vm.ipv4, vm.ipv6] : [vm.ipv4]);
      for (const n of allowed) {
        const dotted = `content:".${literal(n)}"; endswith;`;
        rule(
          'pass',
          `tls ${vmSrc} any -> any any`,
          `allowed name for ${vm.name}`,
          `tls.sni; to_lowercase; dotprefix; ${dotted}`,
        );
        rule(
          'pass',
          `http ${vmSrc} any -> any any`,
          `allowed name for ${vm.name}`,
          `http.host; dotprefix; ${dotted}`,
        );
      }
    }

    if (names) {
      const who = `profile ${profile.name}`;
      nameRules(
        'rejectboth',
        `tls ${src} any -> any any`,
        `blocked name (TLS SNI), ${who}`,
        'tls.sni; to_lowercase',
        names,
      );
      nameRules(
        'rejectboth',
        `http ${src} any -> any any`,
        `blocked name (HTTP CONNECT), ${who}`,
        'http.method; content:"CONNECT"; http.host',
        names,
      );
      // the server is reset; the service answers the guest with the block page (block-response.ts)
      nameRules(
        'rejectdst',
        `http ${src} any -> any any`,
        `blocked name (HTTP Host), ${who}`,
        'http.method; content:!"CONNECT"; http.host',
        names,
        ` metadata:portcullis ${BLOCK_PAGE_METADATA};`,
      );
    }

    if (doh) {
      nameRules(
        'rejectboth',
        `tls ${src} any -> any any`,
        `DoH resolver by name (TLS SNI), profile ${profile.name}`,
        'tls.sni; to_lowercase',
        doh,
      );
      const v4 = [...new Set(lists.dohAddresses.filter((a) => isIPv4(a)))].sort();
      if (v4.length > 0) {
        const content = v4.join('\n') + '\n';
        const name = `pc-doh-addresses-${hash8(content)}`;
        let d = datasets.find((x) => x.name === name);
        if (!d) {
          d = { name, file: join(options.dir, `${name}.lst`), type: 'ipv4', content, count: v4.length };
          datasets.push(d);
        }
        rule(
          'rejectboth',
          `tls ${src} any -> any any`,
          `DoH resolver by address, profile ${profile.name}`,
          `flow:established,to_server; ip.dst; ${lookup(d)}`,
        );
      }
    }

    if (closeBypass) {
      const who = `profile ${profile.name}`;
      // a DNS query header: QR 0, opcode 0, one question, no answers or authority, then a label
      const query = (at: number): string =>
        `byte_test:1,<,8,${at + 2}; content:"|00 01 00 00 00 00 00|"; offset:${at + 4}; depth:7; byte_test:1,>,0,${at + 12}; byte_test:1,<,64,${at + 12};`;
      rule(
        'drop',
        `udp ${src} any -> any !53`,
        `bypass: DNS on a port other than 53, ${who}`,
        `dsize:>16; ${query(0)}`,
      );
      rule(
        'drop',
        `tcp ${src} any -> any !53`,
        `bypass: DNS over TCP on a port other than 53, ${who}`,
        `flow:established,to_server; dsize:>18; ${query(2)}`,
      );
      // 443 and 80: the client's first bytes must open a TLS handshake record / an HTTP
      // request line. A flowbit marks a flow that opened so; the check drops data of a
      // flow without it that does not open so. Suricata evaluates drop rules before
      // alert rules, so on the first data packet the check runs before the bit is set.
      // (App-layer detection gives up on a protocol only late, after data went through.)
      const first = (port: number, bit: string, opening: string, notOpening: string, what: string): void => {
        rule(
          'drop',
          `tcp ${src} any -> any ${port}`,
          `bypass: not ${what} on port ${port}, ${who}`,
          `flow:established,to_server; dsize:>0; flowbits:isnotset,${bit}; ${notOpening}`,
        );
        rule(
          'alert',
          `tcp ${src} any -> any ${port}`,
          `${what} opening, ${who}`,
          `flow:established,to_server; ${opening} flowbits:set,${bit}; flowbits:noalert;`,
        );
      };
      first(443, 'pc.tls', 'content:"|16 03|"; depth:2;', 'content:!"|16 03|"; depth:2;', 'TLS');
      first(80, 'pc.http', 'pcre:"/^[A-Z]{3,16} /";', 'pcre:!"/^[A-Z]{3,16} /";', 'HTTP');
      rule(
        'drop',
        `tcp ${src} any -> any any`,
        `bypass: SSH (a tunnel), ${who}`,
        'flow:established,to_server; app-layer-protocol:ssh;',
      );
      // WireGuard: handshake initiation, type 1, 148 bytes
      rule(
        'drop',
        `udp ${src} any -> any any`,
        `bypass: WireGuard handshake, ${who}`,
        'dsize:148; content:"|01 00 00 00|"; depth:4;',
      );
      // OpenVPN: P_CONTROL_HARD_RESET_CLIENT_V2 (0x38) / V3 (0x50), plain, tls-auth SHA1 / SHA256
      for (const op of ['38', '50']) {
        rule(
          'drop',
          `udp ${src} any -> any any`,
          `bypass: OpenVPN handshake (UDP), ${who}`,
          `content:"|${op}|"; depth:1; dsize:14; content:"|00 00 00 00 00|"; offset:9; depth:5;`,
        );
        for (const size of [42, 54])
          rule(
            'drop',
            `udp ${src} any -> any any`,
            `bypass: OpenVPN handshake (UDP, tls-auth), ${who}`,
            `content:"|${op}|"; depth:1; dsize:${size};`,
          );
        rule(
          'drop',
          `tcp ${src} any -> any any`,
          `bypass: OpenVPN handshake (TCP), ${who}`,
          `flow:established,to_server; content:"|00|"; depth:1; content:"|${op}|"; offset:2; depth:1; byte_test:2,<,64,0; byte_test:2,>,13,0; stream_size:client,<,80;`,
        );
      }
    }
  }
  lines.push('');
  return { rules: lines.join('\n'), datasets, ruleCount };
}
