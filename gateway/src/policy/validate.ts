import { Type, type TSchema } from 'typebox';
import type { Validator } from 'typebox/compile';
import { invalid, type Issue } from '../errors.js';
import { compiled, schemaIssues } from '../schema.js';
import { effectiveProfiles } from './builtins.js';
import { isDeepFrozen } from './fingerprint.js';
import { Policy, Profile, Schedule, Vm, type Rule } from './model.js';
import { isIpv4, isIpv6, normaliseMac, parseCidr } from './net.js';

/**
 * Deep-frozen parts of a policy (VMs, profiles, schedules, address lists) known to
 * pass their schema, and those known to pass their own checks (everything that does
 * not look at other parts): a policy change re-checks what it changed, and only the
 * checks across parts (names, addresses, references) for the rest. What is frozen
 * cannot change, so what was found about it still holds.
 */
const schemaPassed = new WeakSet<object>();
const ownChecksPassed = new WeakSet<object>();

/** Whether a part passes its schema, remembered for deep-frozen parts that do. */
function passesSchema(part: unknown, schema: Validator): boolean {
  const key = typeof part === 'object' && part !== null ? part : undefined;
  if (key && schemaPassed.has(key)) return true;
  if (!schema.Check(part)) return false;
  if (key && isDeepFrozen(key)) schemaPassed.add(key);
  return true;
}

/**
 * Check a policy in full. Returns every problem found as `{path, message}`; an empty
 * list means the policy can be compiled. Pure.
 */
export function checkPolicy(input: unknown, now: Date = new Date()): Issue[] {
  const issues: Issue[] = [];
  if (!schemaCheck(input)) {
    // the check in parts is fast; the whole schema's errors say what is wrong
    return schemaIssues(Policy, input, 50).map((i) => ({ path: i.path || '/', message: i.message }));
  }
  const policy = input as Policy;

  const profiles = effectiveProfiles(policy.profiles);
  const vmNames = new Set<string>();
  const macs = new Map<string, string>();
  const ipv4s = new Map<string, string>();
  /** VMs (their indexes) by port: a port carries one VM. */
  const ports = new Map<string, number[]>();

  const seenProfiles = new Set<string>();
  policy.profiles.forEach((p, i) => {
    if (seenProfiles.has(p.name))
      issues.push({ path: `/profiles/${i}/name`, message: `duplicate profile "${p.name}"` });
    seenProfiles.add(p.name);
  });

  // a part's own checks (those that look at nothing else) are skipped for a deep-frozen
  // part that passed them before; the issues still come in the same order
  const remember = (part: object, ownIssues: number): void => {
    if (ownIssues === 0 && isDeepFrozen(part)) ownChecksPassed.add(part);
  };

  policy.vms.forEach((vm, i) => {
    const at = `/vms/${i}`;
    const known = ownChecksPassed.has(vm);
    let own = 0;
    const ownIssue = (issue: Issue): void => {
      issues.push(issue);
      own++;
    };
    if (vmNames.has(vm.name)) issues.push({ path: `${at}/name`, message: `duplicate VM name "${vm.name}"` });
    vmNames.add(vm.name);
    const mac = normaliseMac(vm.mac);
    const macOwner = macs.get(mac);
    if (macOwner)
      issues.push({ path: `${at}/mac`, message: `MAC ${vm.mac} is already used by VM "${macOwner}"` });
    else macs.set(mac, vm.name);
    if (
      !known &&
      (/^(01|03|05|07|09|0b|0d|0f)/i.test(mac.replace(/:/g, '').slice(0, 2)) || mac === '00:00:00:00:00:00')
    ) {
      ownIssue({
        path: `${at}/mac`,
        message: `MAC ${vm.mac} is a multicast or zero address; use a unicast MAC`,
      });
    }
    if (!known && !isIpv4(vm.ipv4))
      ownIssue({ path: `${at}/ipv4`, message: `"${vm.ipv4}" is not an IPv4 address` });
    else {
      const ipOwner = ipv4s.get(vm.ipv4);
      if (ipOwner)
        issues.push({ path: `${at}/ipv4`, message: `${vm.ipv4} is already leased to VM "${ipOwner}"` });
      else ipv4s.set(vm.ipv4, vm.name);
    }
    if (vm.port !== undefined) ports.set(vm.port, [...(ports.get(vm.port) ?? []), i]);
    if (!known && vm.ipv6 !== undefined && !isIpv6(vm.ipv6)) {
      ownIssue({ path: `${at}/ipv6`, message: `"${vm.ipv6}" is not an IPv6 address` });
    }
    if (!profiles.has(vm.profile)) {
      issues.push({
        path: `${at}/profile`,
        message: `unknown profile "${vm.profile}"; known: ${[...profiles.keys()].join(', ')}`,
      });
    }
    if (known) return;
    const before = issues.length;
    vm.rules?.forEach((r, j) => checkRule(r, `${at}/rules/${j}`, issues, now));
    remember(vm, own + issues.length - before);
  });

  // a shared port is named at each VM on it, so that a change to either is told why
  for (const [port, on] of ports) {
    if (on.length < 2) continue;
    for (const i of on) {
      const others = on.filter((j) => j !== i).map((j) => `"${policy.vms[j]!.name}"`);
      issues.push({
        path: `/vms/${i}/port`,
        message: `port ${port} is already VM ${others.join(', ')}'s; a port carries one VM (another device on it gets the unassigned pool)`,
      });
    }
  }

  policy.profiles.forEach((p, i) => {
    if (ownChecksPassed.has(p)) return;
    const before = issues.length;
    p.rules.forEach((r, j) => checkRule(r, `/profiles/${i}/rules/${j}`, issues, now));
    const tz = p.parental?.timezone;
    if (tz !== undefined && !isTimeZone(tz))
      issues.push({
        path: `/profiles/${i}/parental/timezone`,
        message: `unknown time zone "${tz}"; use an IANA name such as Europe/Berlin`,
      });
    remember(p, issues.length - before);
  });
  // references to VMs need the full VM list
  const checkVmRef = (name: string, path: string): void => {
    if (!vmNames.has(name)) issues.push({ path, message: `unknown VM "${name}"` });
  };
  policy.profiles.forEach((p, i) => {
    p.reach.forEach((n, j) => checkVmRef(n, `/profiles/${i}/reach/${j}`));
    p.rules.forEach((r, j) => {
      if ('vm' in r.to) checkVmRef(r.to.vm, `/profiles/${i}/rules/${j}/to/vm`);
    });
  });
  policy.vms.forEach((vm, i) => {
    vm.rules?.forEach((r, j) => {
      if ('vm' in r.to) checkVmRef(r.to.vm, `/vms/${i}/rules/${j}/to/vm`);
    });
  });

  const schedNames = new Set<string>();
  policy.schedules.forEach((s, i) => {
    if (schedNames.has(s.name))
      issues.push({ path: `/schedules/${i}/name`, message: `duplicate schedule "${s.name}"` });
    schedNames.add(s.name);
    s.vms.forEach((n, j) => checkVmRef(n, `/schedules/${i}/vms/${j}`));
    if (!isTimeZone(s.timezone)) {
      issues.push({
        path: `/schedules/${i}/timezone`,
        message: `unknown time zone "${s.timezone}"; use an IANA name such as Europe/Berlin`,
      });
    }
    if (s.services && s.services.length > 0 && s.mode !== 'deny') {
      issues.push({
        path: `/schedules/${i}/mode`,
        message: 'a schedule for services blocks them in its windows: use mode "deny"',
      });
    }
    s.windows.forEach((w, j) => {
      if (w.start === w.end)
        issues.push({
          path: `/schedules/${i}/windows/${j}/end`,
          message: 'a window must not start and end at the same time',
        });
    });
  });

  const cidrList = (list: readonly string[] | undefined, at: string): void => {
    if (list === undefined || ownChecksPassed.has(list)) return;
    const before = issues.length;
    list.forEach((c, i) => {
      const r = parseCidr(c);
      if ('error' in r) issues.push({ path: `${at}/${i}`, message: r.error });
    });
    remember(list, issues.length - before);
  };
  cidrList(policy.vpnEndpoints, '/vpnEndpoints');
  cidrList(policy.updateServers, '/updateServers');
  cidrList(policy.deny, '/deny');
  return issues;
}

/**
 * The policy schema, checked in parts: the top level with the VM, profile and schedule
 * lists as lists of anything, then each VM, profile and schedule against its own
 * schema (skipped for deep-frozen ones that passed before). The same as checking
 * `Policy` in one go; what is wrong is then told by `schemaIssues(Policy, …)`.
 */
interface SchemaParts {
  readonly top: Validator;
  readonly vm: Validator;
  readonly profile: Validator;
  readonly schedule: Validator;
}
let parts: SchemaParts | undefined;
function schemaParts(): SchemaParts {
  if (parts) return parts;
  const { vms, profiles, schedules, ...rest } = Policy.properties;
  const anyList = (list: TSchema): TSchema => {
    const { maxItems } = list as { maxItems?: number };
    return Type.Array(Type.Unknown(), maxItems === undefined ? {} : { maxItems });
  };
  const top = Type.Object(
    { ...rest, vms: anyList(vms), profiles: anyList(profiles), schedules: anyList(schedules) },
    { additionalProperties: false },
  );
  parts = {
    top: compiled(top),
    vm: compiled(Vm),
    profile: compiled(Profile),
    schedule: compiled(Schedule),
  };
  return parts;
}

function schemaCheck(input: unknown): boolean {
  const s = schemaParts();
  if (!s.top.Check(input)) return false;
  const p = input as Policy;
  const each = (list: readonly unknown[], check: Validator): boolean =>
    list.every((item) => passesSchema(item, check));
  return each(p.vms, s.vm) && each(p.profiles, s.profile) && each(p.schedules, s.schedule);
}

/** A rule's own checks. Keep them independent of `now`: their result is remembered for frozen rules. */
function checkRule(r: Rule, at: string, issues: Issue[], _now: Date): void {
  if ('cidr' in r.to) {
    const c = parseCidr(r.to.cidr);
    if ('error' in c) issues.push({ path: `${at}/to/cidr`, message: c.error });
  }
  const proto = r.proto ?? 'any';
  if (r.ports && r.ports.length > 0) {
    if (proto !== 'tcp' && proto !== 'udp') {
      issues.push({ path: `${at}/ports`, message: 'ports need proto tcp or udp' });
    }
    r.ports.forEach((p, k) => {
      const [a, b] = p.split('-').map(Number);
      if (a! < 1 || a! > 65535 || (b !== undefined && (b < 1 || b > 65535 || b < a!))) {
        issues.push({
          path: `${at}/ports/${k}`,
          message: `"${p}" is not a port 1-65535 or an ascending range`,
        });
      }
    });
  }
  if (r.icmpType !== undefined && proto !== 'icmp') {
    issues.push({ path: `${at}/icmpType`, message: 'icmpType needs proto icmp' });
  }
  if (r.expires !== undefined && Number.isNaN(Date.parse(r.expires))) {
    issues.push({ path: `${at}/expires`, message: `"${r.expires}" is not an ISO 8601 date-time` });
  }
}

/** Time zone names known to be valid (creating a DateTimeFormat to find out is slow). */
const validTimeZones = new Set<string>();

function isTimeZone(tz: string): boolean {
  if (validTimeZones.has(tz)) return true;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    if (validTimeZones.size < 1000) validTimeZones.add(tz);
    return true;
  } catch {
    return false;
  }
}

/** Validate or throw POLICY_INVALID listing every problem. */
export function assertPolicy(input: unknown, now?: Date): Policy {
  const issues = checkPolicy(input, now);
  if (issues.length > 0) throw invalid('POLICY_INVALID', 'invalid policy', issues);
  return input as Policy;
}
