import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';

/**
 * The polkit rule that lets the service manage its children's units, run as polkitd
 * runs it (a script that calls `polkit.addRule`; Debian 12's polkitd 122 evaluates it
 * with duktape, ECMAScript 5.1: the file uses nothing newer) against the questions
 * systemd asks: action `org.freedesktop.systemd1.manage-units` with the unit and the
 * verb as details.
 */

type Rule = (
  action: { id: string; lookup(key: string): string | undefined },
  subject: { user: string },
) => string;

const RESULT = { YES: 'yes', NO: 'no', NOT_HANDLED: 'not-handled', AUTH_ADMIN: 'auth_admin' } as const;

function loadRules(): Rule[] {
  const rules: Rule[] = [];
  const source = readFileSync(join(import.meta.dirname, '50-portcullis.rules'), 'utf8');
  runInNewContext(source, { polkit: { Result: RESULT, addRule: (rule: Rule) => rules.push(rule) } });
  return rules;
}

function decide(
  user: string,
  unit: string,
  verb: string,
  id = 'org.freedesktop.systemd1.manage-units',
): string {
  const details: Record<string, string> = { unit, verb };
  for (const rule of loadRules()) {
    const r = rule({ id, lookup: (key) => details[key] }, { user });
    if (r !== RESULT.NOT_HANDLED) return r;
  }
  return RESULT.NOT_HANDLED;
}

describe('50-portcullis.rules', () => {
  it('is ECMAScript 5 (no const, let, arrow functions or template strings)', () => {
    const source = readFileSync(join(import.meta.dirname, '50-portcullis.rules'), 'utf8')
      .split('\n')
      .filter((l) => !l.trim().startsWith('//'))
      .join('\n');
    expect(source).not.toMatch(/\b(const|let)\s|=>|`/);
  });

  it.each([
    ['portcullis-suricata@inline.service', 'restart'],
    ['portcullis-suricata@ids.service', 'start'],
    ['portcullis-suricata@inline.service', 'stop'],
    ['portcullis-suricata@inline.service', 'kill'],
    ['portcullis-dnsmasq.service', 'restart'],
    ['portcullis-dnsmasq.service', 'kill'],
  ])('lets the user portcullis %s: %s', (unit, verb) => {
    expect(decide('portcullis', unit, verb)).toBe(RESULT.YES);
  });

  it.each([
    ['another user', 'suricata', 'portcullis-suricata@inline.service', 'restart'],
    ['another unit', 'portcullis', 'portcullis.service', 'restart'],
    ['a system unit', 'portcullis', 'ssh.service', 'start'],
    ['another instance', 'portcullis', 'portcullis-suricata@x.service', 'start'],
    ['a name that only starts like one', 'portcullis', 'portcullis-dnsmasq.service.d', 'start'],
    ['another verb', 'portcullis', 'portcullis-dnsmasq.service', 'enable'],
  ])('leaves %s to polkit defaults (no)', (_what, user, unit, verb) => {
    expect(decide(user, unit, verb)).toBe(RESULT.NOT_HANDLED);
  });

  it('answers nothing but manage-units', () => {
    expect(
      decide('portcullis', 'portcullis-dnsmasq.service', 'restart', 'org.freedesktop.login1.reboot'),
    ).toBe(RESULT.NOT_HANDLED);
  });
});
