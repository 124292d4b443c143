import { TypeCompiler } from '@sinclair/typebox/compiler';
import { Value } from '@sinclair/typebox/value';
import { invalid, type Issue } from '../errors.js';
import { effectiveProfiles } from './builtins.js';
import { Policy, type Rule } from './model.js';
import { isIpv4, isIpv6, normaliseMac, parseCidr } from './net.js';

/**
 * Check a policy in full. Returns every problem found as `{path, message}`; an empty
 * list means the policy can be compiled. Pure.
 */
export function checkPolicy(input: unknown, now: Date = new Date()): Issue[] {
  const issues: Issue[] = [];
  if (!policySchema().Check(input)) {
    // the compiled check is fast; the interpreter says what is wrong
    for (const e of Value.Errors(Policy, input)) {
      issues.push({ path: e.path || '/', message: e.message });
      if (issues.length >= 50) break;
    }
    return issues;
  }
  const policy = input as Policy;

  const profiles = effectiveProfiles(policy.profiles);
  const vmNames = new Set<string>();
  const macs = new Map<string, string>();
  const ipv4s = new Map<string, string>();

  const seenProfiles = new Set<string>();
  policy.profiles.forEach((p, i) => {
    if (seenProfiles.has(p.name)) issues.push({ path: `/profiles/${i}/name`, message: `duplicate profile "${p.name}"` });
    seenProfiles.add(p.name);
  });

  policy.vms.forEach((vm, i) => {
    const at = `/vms/${i}`;
    if (vmNames.has(vm.name)) issues.push({ path: `${at}/name`, message: `duplicate VM name "${vm.name}"` });
    vmNames.add(vm.name);
    const mac = normaliseMac(vm.mac);
    const macOwner = macs.get(mac);
    if (macOwner) issues.push({ path: `${at}/mac`, message: `MAC ${vm.mac} is already used by VM "${macOwner}"` });
    else macs.set(mac, vm.name);
    if (/^(01|03|05|07|09|0b|0d|0f)/i.test(mac.replace(/:/g, '').slice(0, 2)) || mac === '00:00:00:00:00:00') {
      issues.push({ path: `${at}/mac`, message: `MAC ${vm.mac} is a multicast or zero address; use a unicast MAC` });
    }
    if (!isIpv4(vm.ipv4)) issues.push({ path: `${at}/ipv4`, message: `"${vm.ipv4}" is not an IPv4 address` });
    else {
      const ipOwner = ipv4s.get(vm.ipv4);
      if (ipOwner) issues.push({ path: `${at}/ipv4`, message: `${vm.ipv4} is already leased to VM "${ipOwner}"` });
      else ipv4s.set(vm.ipv4, vm.name);
    }
    if (vm.ipv6 !== undefined && !isIpv6(vm.ipv6)) {
      issues.push({ path: `${at}/ipv6`, message: `"${vm.ipv6}" is not an IPv6 address` });
    }
    if (!profiles.has(vm.profile)) {
      issues.push({ path: `${at}/profile`, message: `unknown profile "${vm.profile}"; known: ${[...profiles.keys()].join(', ')}` });
    }
    vm.rules?.forEach((r, j) => checkRule(r, `${at}/rules/${j}`, issues, now));
  });

  policy.profiles.forEach((p, i) => {
    p.rules.forEach((r, j) => checkRule(r, `/profiles/${i}/rules/${j}`, issues, now));
    const tz = p.parental?.timezone;
    if (tz !== undefined && !isTimeZone(tz)) issues.push({ path: `/profiles/${i}/parental/timezone`, message: `unknown time zone "${tz}"; use an IANA name such as Europe/Berlin` });
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
    if (schedNames.has(s.name)) issues.push({ path: `/schedules/${i}/name`, message: `duplicate schedule "${s.name}"` });
    schedNames.add(s.name);
    s.vms.forEach((n, j) => checkVmRef(n, `/schedules/${i}/vms/${j}`));
    if (!isTimeZone(s.timezone)) {
      issues.push({ path: `/schedules/${i}/timezone`, message: `unknown time zone "${s.timezone}"; use an IANA name such as Europe/Berlin` });
    }
    if (s.services && s.services.length > 0 && s.mode !== 'deny') {
      issues.push({ path: `/schedules/${i}/mode`, message: 'a schedule for services blocks them in its windows: use mode "deny"' });
    }
    s.windows.forEach((w, j) => {
      if (w.start === w.end) issues.push({ path: `/schedules/${i}/windows/${j}/end`, message: 'a window must not start and end at the same time' });
    });
  });

  const cidrList = (list: readonly string[] | undefined, at: string): void =>
    list?.forEach((c, i) => {
      const r = parseCidr(c);
      if ('error' in r) issues.push({ path: `${at}/${i}`, message: r.error });
    });
  cidrList(policy.vpnEndpoints, '/vpnEndpoints');
  cidrList(policy.updateServers, '/updateServers');
  cidrList(policy.deny, '/deny');
  return issues;
}

let compiled: ReturnType<typeof TypeCompiler.Compile<typeof Policy>> | undefined;
function policySchema(): ReturnType<typeof TypeCompiler.Compile<typeof Policy>> {
  compiled ??= TypeCompiler.Compile(Policy);
  return compiled;
}

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
        issues.push({ path: `${at}/ports/${k}`, message: `"${p}" is not a port 1-65535 or an ascending range` });
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

function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
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
