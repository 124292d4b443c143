import { describe, expect, it } from 'vitest';
import { PortcullisError } from '../errors.js';
import { makePolicy } from '../store/test-fixtures.js';
import { parsePolicyYaml, policyToYaml, type YamlIssue } from './yaml.js';

function parseError(text: string): PortcullisError {
  try {
    parsePolicyYaml(text);
  } catch (err) {
    if (err instanceof PortcullisError) return err;
    throw err;
  }
  throw new Error('expected the file to be refused');
}

const issuesOf = (err: PortcullisError): YamlIssue[] => err.context?.issues as YamlIssue[];

describe('policy YAML', () => {
  it('round-trips a policy exactly', () => {
    const text = policyToYaml(makePolicy(), 'Portcullis policy\nexported for a test');
    expect(text.startsWith('# Portcullis policy\n# exported for a test\n')).toBe(true);
    expect(parsePolicyYaml(text)).toEqual(makePolicy());
    expect(policyToYaml(parsePolicyYaml(text))).toBe(policyToYaml(makePolicy()));
  });

  it('reads a hand-written file, ports given as numbers and times unquoted', () => {
    const text = `
vms:
  - name: kid
    mac: 52:54:00:00:00:01
    ipv4: 10.20.0.11
    profile: kid
    rules:
      - { action: drop, to: { cidr: 203.0.113.0/24 }, proto: tcp, ports: [80, 443] }
profiles: []
schedules:
  - name: bedtime
    vms: [kid]
    timezone: Europe/Berlin
    windows: [{ days: [mon], start: 21:00, end: 07:00 }]
    mode: deny
vpnEndpoints: []
updateServers: []
ipv6: false
`;
    const p = parsePolicyYaml(text);
    expect(p.vms[0]?.mac).toBe('52:54:00:00:00:01');
    expect(p.vms[0]?.rules?.[0]?.ports).toEqual(['80', '443']);
    expect(p.schedules[0]?.windows[0]).toEqual({ days: ['mon'], start: '21:00', end: '07:00' });
  });

  it('reads the JSON form too', () => {
    expect(parsePolicyYaml(JSON.stringify(makePolicy()))).toEqual(makePolicy());
  });

  it('reports a syntax error with line and column', () => {
    const err = parseError('vms:\n  - name: kid\n    mac: [unclosed\nprofiles: []\n');
    expect(err.code).toBe('POLICY_INVALID');
    const [first] = issuesOf(err);
    expect(first?.message).toMatch(/^YAML syntax error at line \d+, column \d+/);
    expect(first?.line).toBeGreaterThanOrEqual(3);
  });

  it('refuses duplicate keys', () => {
    const err = parseError('vms: []\nvms: []\n');
    expect(issuesOf(err)[0]?.message).toMatch(/line 2, column 1: .*unique/i);
  });

  it('refuses an empty file', () => {
    expect(parseError('# nothing\n').message).toMatch(/empty/);
  });

  it('refuses alias bombs', () => {
    const bomb = [
      'a: &a [x, x, x, x, x, x, x, x, x, x]',
      ...Array.from(
        { length: 8 },
        (_, i) =>
          `${'bcdefghi'[i]}: &${'bcdefghi'[i]} [${Array(10)
            .fill(`*${i === 0 ? 'a' : 'bcdefghi'[i - 1]}`)
            .join(', ')}]`,
      ),
    ].join('\n');
    expect(parseError(bomb).message).toMatch(/alias|resource/i);
  });

  it('names the field at fault with its path, line and column', () => {
    const p = makePolicy();
    const text = policyToYaml(p).replace('mac: 52:54:00:00:00:02', 'mac: 52:54:00:00:00:01');
    const err = parseError(text);
    const issue = issuesOf(err).find((i) => i.path === '/vms/1/mac');
    expect(issue?.message).toMatch(/already used by VM "kid" \(line \d+, column 10\)/);
    expect(text.split('\n')[issue!.line! - 1]).toContain('mac: 52:54:00:00:00:01');
  });

  it('names a schema problem, and the parent for a missing field', () => {
    const text = policyToYaml(makePolicy())
      .replace(/^ *ipv4: 10.20.0.12\n/m, '')
      .replace('internet: allowlist-only', 'internet: sometimes');
    const issues = issuesOf(parseError(text));
    expect(issues.map((i) => i.path)).toEqual(
      expect.arrayContaining(['/vms/1/ipv4', '/profiles/0/internet']),
    );
    expect(issues.find((i) => i.path === '/vms/1/ipv4')?.line).toBeDefined();
  });
});
