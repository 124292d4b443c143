/**
 * Golden files of the whole compiled table: for each built-in profile and each IPS
 * mode, the nft JSON a full apply sends to the kernel (what `NftApplier` makes of the
 * compiled ruleset), pretty-printed (a rule's statements one a line), in `golden/<case>.golden.json`. A change to what
 * the compiler emits shows there as a diff to review (`git log -p gateway/src/policy/golden`).
 *
 * Any difference fails. After a deliberate change, regenerate and review the diff:
 *
 *   UPDATE_GOLDEN=1 npx vitest run --project unit gateway/src/policy/compile.golden.test.ts
 *
 * (UPDATE_GOLDEN also writes the other golden files of the unit tests.)
 */
import { readdirSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { NftApplier } from '../nft/applier.js';
import { toNftJson, type NftBackend } from '../nft/backend.js';
import type { NftCommand, QueueSettings } from '../nft/types.js';
import { BUILTIN_PROFILES } from './builtins.js';
import { compile, type CompileInput } from './compile.js';
import { groupByPrefix } from './intervals.js';
import type { Policy, Profile, Vm } from './model.js';
import { windowsByVm } from './schedule.js';
import { checkPolicy } from './validate.js';

const dir = fileURLToPath(new URL('./golden/', import.meta.url));

const network = {
  lan: { iface: 'lan0', ipv4: '10.20.0.1', prefix: 24 },
  wan: { iface: 'wan0' },
  mgmt: { iface: 'mgmt0', ports: [8080] },
};
/** A Wednesday, 12:00 UTC. */
const now = new Date('2026-11-25T12:00:00Z');
const nftQueue: QueueSettings = { kind: 'nft', num: 0 };
const xtQueue: QueueSettings = { kind: 'xt', num: 0 };

/** Inline IPS that lets traffic pass while Suricata is down (no built-in profile has it). */
const inlineOpen: Profile = {
  name: 'inline-open',
  internet: 'open',
  rules: [],
  reach: [],
  ips: { mode: 'ips', failure: 'fail-open' },
};

/** Allowlist-only internet with every kernel parental control. */
const teen: Profile = {
  name: 'teen',
  internet: 'allowlist-only',
  rules: [],
  reach: [],
  ips: { mode: 'ips', failure: 'fail-closed' },
  parental: { closeBypass: true, slowKbytes: 500, slowServices: [{ service: 'video', kbytes: 200 }] },
};

const guest = (profile: string, extra: Partial<Vm> = {}): Vm => ({
  name: 'guest',
  mac: '52:54:00:00:00:0A',
  ipv4: '10.20.0.10',
  profile,
  ...extra,
});
const work: Vm = { name: 'work', mac: '52:54:00:00:00:0b', ipv4: '10.20.0.11', profile: 'work' };

function policy(vms: Vm[], extra: Partial<Policy> = {}): Policy {
  return {
    vms,
    profiles: [],
    schedules: [],
    vpnEndpoints: ['203.0.113.200'],
    updateServers: ['203.0.113.50', '2001:db8:50::/48'],
    deny: ['198.51.100.66', '192.0.2.0/28'],
    ipv6: false,
    ...extra,
  };
}

/** What every case shares: the appliance's inputs besides the policy. */
function input(p: Policy, queue: QueueSettings | undefined, extra: Partial<CompileInput> = {}): CompileInput {
  const { byVm, services } = windowsByVm(p.schedules, now);
  return {
    policy: p,
    network,
    now,
    windows: byVm,
    serviceWindows: services,
    lists: { deny: groupByPrefix(['203.0.113.128/25', '198.51.100.77', '2001:db8:bad::/48']) },
    bypass: { doh: ['192.0.2.53'], tor: ['198.51.100.9'] },
    unassigned: { from: '10.20.0.200', to: '10.20.0.249' },
    ...(queue ? { queue } : {}),
    ...extra,
  };
}

const cases: Record<string, CompileInput> = {
  // the built-in profiles, Suricata inline on the nft queue (the appliance on a current kernel)
  open: input(policy([guest('open')]), nftQueue),
  'internet-only': input(policy([guest('internet-only')]), nftQueue),
  work: input(policy([guest('work')]), nftQueue),
  kid: input(policy([guest('kid')]), nftQueue),
  quarantine: input(policy([guest('quarantine')]), nftQueue),
  // the IPS modes: ips fail-closed (kid) and fail-open, on the nft queue and the xtables
  // target; and Suricata off (nothing is queued)
  'ips-fail-closed-xt': input(policy([guest('kid')]), xtQueue),
  'ips-fail-open-nft': input(policy([guest('inline-open')], { profiles: [inlineOpen] }), nftQueue),
  'ips-fail-open-xt': input(policy([guest('inline-open')], { profiles: [inlineOpen] }), xtQueue),
  'ips-suricata-off': input(policy([guest('kid')]), undefined),
  // a VM's own rules, every kind of target, with IPv6
  rules: input(
    policy(
      [
        guest('kid', {
          ipv6: 'fd00:20::10',
          rules: [
            { id: 'net', action: 'drop', to: { cidr: '198.51.100.0/24' }, expires: '2026-11-25T13:00:00Z' },
            { id: 'gone', action: 'drop', to: { cidr: '198.51.100.1' }, expires: '2026-11-25T11:00:00Z' },
            { id: 'v6', action: 'reject', to: { cidr: '2001:db8:1::/64' }, proto: 'tcp', ports: ['443'] },
            { action: 'accept', to: { domain: 'example.org' }, proto: 'tcp', ports: ['80', '8000-8080'] },
            { id: 'peer', action: 'accept', to: { vm: 'work' }, proto: 'tcp', ports: ['7777'] },
            { id: 'dot', action: 'reject', to: { special: 'dns' } },
            { id: 'ping', action: 'drop', to: { special: 'internet' }, proto: 'icmp', icmpType: 'echo-request' },
          ],
        }),
        { ...work, ipv6: 'fd00:20::11' },
      ],
      { ipv6: true },
    ),
    nftQueue,
  ),
  // port identity: VMs on ports of their own (kid, work; IPv6 on) and one without (legacy)
  ports: input(
    policy(
      [
        guest('kid', { name: 'kid', port: 'g-kid', ipv6: 'fd00:20::10' }),
        { ...work, port: 'g-work' },
        { name: 'old', mac: '52:54:00:00:00:0c', ipv4: '10.20.0.12', profile: 'internet-only' },
      ],
      { ipv6: true },
    ),
    nftQueue,
  ),
  // kernel parental controls: pause, budget, schedules (whole VM and per service),
  // slow-downs, closed bypasses, allowlist-only
  parental: input(
    policy([guest('teen', { pause: { since: '2026-11-25T11:00:00Z', until: '2026-11-25T14:00:00Z' } })], {
      profiles: [teen],
      schedules: [
        {
          name: 'night',
          vms: ['guest'],
          timezone: 'Europe/Berlin',
          windows: [{ days: ['mon', 'tue', 'wed', 'thu', 'sun'], start: '21:00', end: '07:00' }],
          mode: 'deny',
        },
        {
          name: 'homework',
          vms: ['guest'],
          timezone: 'UTC',
          windows: [{ days: ['mon', 'wed'], start: '15:00', end: '17:30' }],
          mode: 'allowlist-only',
        },
        {
          name: 'no-games',
          vms: ['guest'],
          timezone: 'UTC',
          windows: [{ days: ['sat'], start: '08:00', end: '12:00' }],
          services: ['games'],
          mode: 'deny',
        },
      ],
    }),
    nftQueue,
    { budgetBlocked: new Map([['guest', new Date('2026-11-26T00:00:00Z')]]) },
  ),
};

/** The full-apply transaction for `spec`, as the applier sends it, pretty-printed. */
async function render(spec: CompileInput): Promise<string> {
  const batches: NftCommand[][] = [];
  const backend: NftBackend = {
    kind: 'nft-cli',
    run: async (commands) => {
      batches.push([...commands]);
      return '';
    },
    runText: async () => '',
    close: () => {},
  };
  await new NftApplier(backend).apply(compile(spec));
  expect(batches).toHaveLength(1);
  const json: unknown = JSON.parse(toNftJson(batches[0]!));
  const text = `${pretty(json)}\n`;
  expect(JSON.parse(text)).toEqual(json);
  return text;
}

/** Widest line `pretty` writes on one line, in characters. */
const WIDTH = 110;

/**
 * JSON, indented by two, with every object or array that fits in `WIDTH` characters
 * on one line, and objects of one key opened on the line of their parent: a rule's
 * statements come one a line, so a diff shows what changed.
 */
function pretty(value: unknown, indent = '', prefix = 0, suffix = 0): string {
  const flat = inline(value);
  if (value === null || typeof value !== 'object' || indent.length + prefix + flat.length + suffix <= WIDTH) return flat;
  const entries = Object.entries(value);
  if (!Array.isArray(value) && entries.length === 1 && typeof entries[0]![1] === 'object') {
    // `{"add": {"rule": {` on one line: one level of indentation, not three
    const key = `${JSON.stringify(entries[0]![0])}: `;
    return `{${key}${pretty(entries[0]![1], indent, prefix + key.length + 1, suffix + 1)}}`;
  }
  const inner = `${indent}  `;
  const lines = Array.isArray(value)
    ? value.map((v) => inner + pretty(v, inner, 0, 1))
    : entries.map(([k, v]) => {
        const key = `${JSON.stringify(k)}: `;
        return inner + key + pretty(v, inner, key.length, 1);
      });
  const [open, close] = Array.isArray(value) ? ['[', ']'] : ['{', '}'];
  return lines.length === 0 ? `${open}${close}` : `${open}\n${lines.join(',\n')}\n${indent}${close}`;
}

function inline(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(inline).join(', ')}]`;
  return `{${Object.entries(value)
    .map(([k, v]) => `${JSON.stringify(k)}: ${inline(v)}`)
    .join(', ')}}`;
}

describe('compile: golden rulesets', () => {
  for (const [name, spec] of Object.entries(cases)) {
    it(`${name}: the whole table is as in golden/${name}.golden.json`, async () => {
      expect(checkPolicy(spec.policy, now)).toEqual([]);
      const text = await render(spec);
      const file = `${dir}${name}.golden.json`;
      if (process.env.UPDATE_GOLDEN) await writeFile(file, text);
      expect(text).toBe(await readFile(file, 'utf8'));
    });
  }

  it('has a case for every built-in profile and no golden file without a case', () => {
    for (const p of BUILTIN_PROFILES) expect(Object.keys(cases)).toContain(p.name);
    const files = readdirSync(dir).filter((f) => f.endsWith('.golden.json'));
    expect(files.sort()).toEqual(Object.keys(cases).map((c) => `${c}.golden.json`).sort());
  });

  it('renders the same text twice (deterministic)', async () => {
    expect(await render(cases.parental!)).toBe(await render(cases.parental!));
  });
});
