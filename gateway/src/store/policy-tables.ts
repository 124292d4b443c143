import type { Database, Statement } from 'better-sqlite3';
import { sameJson } from '../policy/fingerprint.js';
import type { Policy, Profile, Rule, RuleTarget, Schedule, Vm } from '../policy/model.js';

/**
 * Row mapping between the policy model and the tables `vms`, `profiles`, `rules`,
 * `schedules` and `settings`. Optional fields that are absent in the model are NULL in
 * the tables and absent again when read, so a policy reads back exactly as written;
 * fields without a column of their own round-trip through the `extra` JSON column.
 * No transactions here: the Store wraps every write.
 */

interface VmRow {
  name: string;
  position: number;
  mac: string;
  ipv4: string;
  ipv6: string | null;
  profile: string;
  owner: string | null;
  notes: string | null;
  quarantine_reason: string | null;
  quarantine_since: string | null;
  extra: string | null;
}

interface ProfileRow {
  name: string;
  position: number;
  description: string | null;
  internet: Profile['internet'];
  reach: string;
  vpn: number | null;
  isolated: number | null;
  ips_mode: Profile['ips']['mode'];
  ips_failure: Profile['ips']['failure'];
  allow_domains: string | null;
  extra: string | null;
}

interface RuleRow {
  vm: string | null;
  profile: string | null;
  position: number;
  id: string | null;
  action: Rule['action'];
  target_kind: 'cidr' | 'domain' | 'vm' | 'special';
  target: string;
  proto: NonNullable<Rule['proto']> | null;
  ports: string | null;
  icmp_type: string | null;
  expires: string | null;
  comment: string | null;
  extra: string | null;
}

interface ScheduleRow {
  name: string;
  position: number;
  vms: string;
  timezone: string;
  windows: string;
  mode: Schedule['mode'];
  enabled: number | null;
  extra: string | null;
}

/** Top-level policy fields with tables of their own; every other one is a row of `settings`. */
const ENTITY_LISTS: readonly string[] = ['vms', 'profiles', 'schedules'];
/** The top-level policy fields kept in `settings` (absent optional ones have no row). */
export type PolicySettings = Omit<Policy, 'vms' | 'profiles' | 'schedules'>;

const bool = (v: boolean | undefined): number | null => (v === undefined ? null : v ? 1 : 0);
const json = (v: unknown): string | null => (v === undefined ? null : JSON.stringify(v));

/** Assign `value` to `key` unless it is NULL: how optional model fields come back. */
function opt<T extends object, K extends keyof T>(obj: T, key: K, value: T[K] | null): void {
  if (value !== null && value !== undefined) obj[key] = value;
}

/** Model fields that have columns; any other field goes to `extra`. */
const COLUMNS = {
  vm: ['name', 'mac', 'ipv4', 'ipv6', 'profile', 'owner', 'notes', 'rules', 'quarantine'],
  profile: ['name', 'description', 'internet', 'rules', 'reach', 'vpn', 'isolated', 'ips', 'allowDomains'],
  rule: ['id', 'action', 'to', 'proto', 'ports', 'icmpType', 'expires', 'comment'],
  schedule: ['name', 'vms', 'timezone', 'windows', 'mode', 'enabled'],
} as const;

/** The fields of `obj` without a column, as JSON, or NULL when there are none. */
function extraOf(obj: object, columns: readonly string[]): string | null {
  const rest = Object.fromEntries(
    Object.entries(obj).filter(([k, v]) => !columns.includes(k) && v !== undefined),
  );
  return Object.keys(rest).length > 0 ? JSON.stringify(rest) : null;
}

/** Put the `extra` fields back, after the column fields. */
function withExtra<T extends object>(obj: T, extra: string | null): T {
  return extra === null ? obj : Object.assign(obj, JSON.parse(extra) as object);
}

function ruleFromRow(r: RuleRow): Rule {
  const to = { [r.target_kind]: r.target } as RuleTarget;
  const rule: Rule = { action: r.action, to };
  const out: Rule = r.id === null ? rule : { id: r.id, ...rule };
  opt(out, 'proto', r.proto);
  opt(out, 'ports', r.ports === null ? null : (JSON.parse(r.ports) as string[]));
  opt(out, 'icmpType', r.icmp_type);
  opt(out, 'expires', r.expires);
  opt(out, 'comment', r.comment);
  return withExtra(out, r.extra);
}

function targetOf(rule: Rule): { kind: RuleRow['target_kind']; value: string } {
  const to = rule.to;
  if ('cidr' in to) return { kind: 'cidr', value: to.cidr };
  if ('domain' in to) return { kind: 'domain', value: to.domain };
  if ('vm' in to) return { kind: 'vm', value: to.vm };
  return { kind: 'special', value: to.special };
}

/** JSON with sorted keys: equal values give equal text whatever their key order. */
export function stableJson(v: unknown): string {
  return JSON.stringify(v, (_k, val: unknown) =>
    val !== null && typeof val === 'object' && !Array.isArray(val)
      ? Object.fromEntries(Object.entries(val).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : val,
  );
}

/** Prepared statements over the policy tables. */
export class PolicyTables {
  readonly #db: Database;
  readonly #s: Record<string, Statement>;

  constructor(db: Database) {
    this.#db = db;
    const p = (sql: string): Statement => db.prepare(sql);
    this.#s = {
      vms: p('SELECT * FROM vms ORDER BY position, name'),
      vm: p('SELECT * FROM vms WHERE name = ?'),
      profiles: p('SELECT * FROM profiles ORDER BY position, name'),
      profile: p('SELECT * FROM profiles WHERE name = ?'),
      schedules: p('SELECT * FROM schedules ORDER BY position, name'),
      schedule: p('SELECT * FROM schedules WHERE name = ?'),
      rules: p('SELECT * FROM rules ORDER BY position, pk'),
      vmRules: p('SELECT * FROM rules WHERE vm = ? ORDER BY position, pk'),
      profileRules: p('SELECT * FROM rules WHERE profile = ? ORDER BY position, pk'),
      settings: p('SELECT key, value FROM settings'),
      insertVm:
        p(`INSERT INTO vms (name, position, mac, ipv4, ipv6, profile, owner, notes, quarantine_reason, quarantine_since, extra)
        VALUES (@name, @position, @mac, @ipv4, @ipv6, @profile, @owner, @notes, @quarantine_reason, @quarantine_since, @extra)`),
      deleteVm: p('DELETE FROM vms WHERE name = ?'),
      moveVm: p('UPDATE vms SET position = ? WHERE name = ? AND position <> ?'),
      insertProfile:
        p(`INSERT INTO profiles (name, position, description, internet, reach, vpn, isolated, ips_mode, ips_failure, allow_domains, extra)
        VALUES (@name, @position, @description, @internet, @reach, @vpn, @isolated, @ips_mode, @ips_failure, @allow_domains, @extra)`),
      deleteProfile: p('DELETE FROM profiles WHERE name = ?'),
      moveProfile: p('UPDATE profiles SET position = ? WHERE name = ? AND position <> ?'),
      insertRule:
        p(`INSERT INTO rules (vm, profile, position, id, action, target_kind, target, proto, ports, icmp_type, expires, comment, extra)
        VALUES (@vm, @profile, @position, @id, @action, @target_kind, @target, @proto, @ports, @icmp_type, @expires, @comment, @extra)`),
      insertSchedule: p(`INSERT INTO schedules (name, position, vms, timezone, windows, mode, enabled, extra)
        VALUES (@name, @position, @vms, @timezone, @windows, @mode, @enabled, @extra)`),
      deleteSchedule: p('DELETE FROM schedules WHERE name = ?'),
      moveSchedule: p('UPDATE schedules SET position = ? WHERE name = ? AND position <> ?'),
      putSetting: p(
        'INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
      ),
      deleteSetting: p('DELETE FROM settings WHERE key = ?'),
    };
  }

  #stmt(name: string): Statement {
    const s = this.#s[name];
    if (!s) throw new Error(`no statement ${name}`);
    return s;
  }

  // ---- reads ----

  /** The whole policy as stored. A new database reads as the empty policy. */
  readPolicy(): Policy {
    const vmRules = new Map<string, Rule[]>();
    const profileRules = new Map<string, Rule[]>();
    for (const r of this.#stmt('rules').all() as RuleRow[]) {
      const [map, key] = r.vm !== null ? [vmRules, r.vm] : [profileRules, r.profile!];
      const list = map.get(key) ?? [];
      list.push(ruleFromRow(r));
      map.set(key, list);
    }
    return {
      vms: (this.#stmt('vms').all() as VmRow[]).map((row) => this.#vm(row, vmRules.get(row.name))),
      profiles: (this.#stmt('profiles').all() as ProfileRow[]).map((row) =>
        this.#profile(row, profileRules.get(row.name) ?? []),
      ),
      schedules: (this.#stmt('schedules').all() as ScheduleRow[]).map((row) => this.#schedule(row)),
      ...this.readSettings(),
    };
  }

  /** One VM with its rules, or undefined. */
  readVm(name: string): Vm | undefined {
    const row = this.#stmt('vm').get(name) as VmRow | undefined;
    return row && this.#vm(row, (this.#stmt('vmRules').all(name) as RuleRow[]).map(ruleFromRow));
  }

  /** One stored (custom) profile with its rules, or undefined. */
  readProfile(name: string): Profile | undefined {
    const row = this.#stmt('profile').get(name) as ProfileRow | undefined;
    return row && this.#profile(row, (this.#stmt('profileRules').all(name) as RuleRow[]).map(ruleFromRow));
  }

  /** One schedule, or undefined. */
  readSchedule(name: string): Schedule | undefined {
    const row = this.#stmt('schedule').get(name) as ScheduleRow | undefined;
    return row && this.#schedule(row);
  }

  /** The ordered rules of a VM or a profile. */
  readRules(owner: { vm: string } | { profile: string }): Rule[] {
    const rows =
      'vm' in owner ? this.#stmt('vmRules').all(owner.vm) : this.#stmt('profileRules').all(owner.profile);
    return (rows as RuleRow[]).map(ruleFromRow);
  }

  /**
   * The policy-wide settings: every top-level policy field besides the VM, profile and
   * schedule lists, one row each; the required ones default to empty for a new database.
   */
  readSettings(): PolicySettings {
    const out: PolicySettings = { vpnEndpoints: [], updateServers: [], ipv6: false };
    for (const { key, value } of this.#stmt('settings').all() as { key: string; value: string }[]) {
      (out as Record<string, unknown>)[key] = JSON.parse(value);
    }
    return out;
  }

  #vm(row: VmRow, rules: Rule[] | undefined): Vm {
    const vm: Vm = { name: row.name, mac: row.mac, ipv4: row.ipv4, profile: row.profile };
    opt(vm, 'ipv6', row.ipv6);
    opt(vm, 'owner', row.owner);
    opt(vm, 'notes', row.notes);
    if (rules !== undefined && rules.length > 0) vm.rules = rules;
    if (row.quarantine_reason !== null && row.quarantine_since !== null) {
      vm.quarantine = { reason: row.quarantine_reason, since: row.quarantine_since };
    }
    return withExtra(vm, row.extra);
  }

  #profile(row: ProfileRow, rules: Rule[]): Profile {
    const p: Profile = {
      name: row.name,
      internet: row.internet,
      rules,
      reach: JSON.parse(row.reach) as string[],
      ips: { mode: row.ips_mode, failure: row.ips_failure },
    };
    opt(p, 'description', row.description);
    opt(p, 'vpn', row.vpn === null ? null : row.vpn === 1);
    opt(p, 'isolated', row.isolated === null ? null : row.isolated === 1);
    opt(p, 'allowDomains', row.allow_domains === null ? null : (JSON.parse(row.allow_domains) as string[]));
    return withExtra(p, row.extra);
  }

  #schedule(row: ScheduleRow): Schedule {
    const s: Schedule = {
      name: row.name,
      vms: JSON.parse(row.vms) as string[],
      timezone: row.timezone,
      windows: JSON.parse(row.windows) as Schedule['windows'],
      mode: row.mode,
    };
    opt(s, 'enabled', row.enabled === null ? null : row.enabled === 1);
    return withExtra(s, row.extra);
  }

  // ---- writes (call inside a transaction) ----

  /**
   * Write the differences between `prev` (what is stored) and `next`: rows that are
   * gone or changed are deleted first (their rules go with them), then changed and new
   * rows are inserted, then positions are brought in line. Deleting before inserting
   * lets two VMs swap a MAC or an address within one change.
   */
  writeDiff(prev: Policy, next: Policy): void {
    this.#diff(prev.vms, next.vms, 'deleteVm', 'moveVm', (vm, position) => this.#insertVm(vm, position));
    this.#diff(prev.profiles, next.profiles, 'deleteProfile', 'moveProfile', (p, position) =>
      this.#insertProfile(p, position),
    );
    this.#diff(prev.schedules, next.schedules, 'deleteSchedule', 'moveSchedule', (s, position) =>
      this.#insertSchedule(s, position),
    );
    const keys = new Set(
      [...Object.keys(prev), ...Object.keys(next)].filter((k) => !ENTITY_LISTS.includes(k)),
    );
    for (const key of keys) {
      const value = (next as Record<string, unknown>)[key];
      if (sameJson(value, (prev as Record<string, unknown>)[key])) continue;
      if (value === undefined) this.#stmt('deleteSetting').run(key);
      else this.#stmt('putSetting').run(key, JSON.stringify(value));
    }
  }

  #diff<T extends { name: string }>(
    prev: readonly T[],
    next: readonly T[],
    del: string,
    move: string,
    insert: (item: T, position: number) => void,
  ): void {
    const prevByName = new Map(prev.map((x, position) => [x.name, { item: x, position }]));
    const after = new Set(next.map((x) => x.name));
    // compared without serialising: an item the caller did not touch is the same object
    const changed = next
      .map((item, position) => ({ item, position }))
      .filter(({ item }) => {
        const old = prevByName.get(item.name)?.item;
        return old === undefined || !sameJson(old, item);
      });
    const changedNames = new Set(changed.map((c) => c.item.name));
    for (const name of prevByName.keys()) if (!after.has(name)) this.#stmt(del).run(name);
    for (const { item } of changed) if (prevByName.has(item.name)) this.#stmt(del).run(item.name);
    for (const { item, position } of changed) insert(item, position);
    next.forEach((item, position) => {
      if (!changedNames.has(item.name) && prevByName.get(item.name)?.position !== position)
        this.#stmt(move).run(position, item.name, position);
    });
  }

  #insertVm(vm: Vm, position: number): void {
    this.#stmt('insertVm').run({
      name: vm.name,
      position,
      mac: vm.mac,
      ipv4: vm.ipv4,
      ipv6: vm.ipv6 ?? null,
      profile: vm.profile,
      owner: vm.owner ?? null,
      notes: vm.notes ?? null,
      quarantine_reason: vm.quarantine?.reason ?? null,
      quarantine_since: vm.quarantine?.since ?? null,
      extra: extraOf(vm, COLUMNS.vm),
    });
    vm.rules?.forEach((r, i) => this.#insertRule(r, i, { vm: vm.name }));
  }

  #insertProfile(p: Profile, position: number): void {
    this.#stmt('insertProfile').run({
      name: p.name,
      position,
      description: p.description ?? null,
      internet: p.internet,
      reach: JSON.stringify(p.reach),
      vpn: bool(p.vpn),
      isolated: bool(p.isolated),
      ips_mode: p.ips.mode,
      ips_failure: p.ips.failure,
      allow_domains: json(p.allowDomains),
      extra: extraOf(p, COLUMNS.profile),
    });
    p.rules.forEach((r, i) => this.#insertRule(r, i, { profile: p.name }));
  }

  #insertRule(r: Rule, position: number, owner: { vm: string } | { profile: string }): void {
    const t = targetOf(r);
    this.#stmt('insertRule').run({
      vm: 'vm' in owner ? owner.vm : null,
      profile: 'profile' in owner ? owner.profile : null,
      position,
      id: r.id ?? null,
      action: r.action,
      target_kind: t.kind,
      target: t.value,
      proto: r.proto ?? null,
      ports: json(r.ports),
      icmp_type: r.icmpType ?? null,
      expires: r.expires ?? null,
      comment: r.comment ?? null,
      extra: extraOf(r, COLUMNS.rule),
    });
  }

  #insertSchedule(s: Schedule, position: number): void {
    this.#stmt('insertSchedule').run({
      name: s.name,
      position,
      vms: JSON.stringify(s.vms),
      timezone: s.timezone,
      windows: JSON.stringify(s.windows),
      mode: s.mode,
      enabled: bool(s.enabled),
      extra: extraOf(s, COLUMNS.schedule),
    });
  }

  /** The database these statements run on. */
  get db(): Database {
    return this.#db;
  }
}
