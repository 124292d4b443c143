import { describe, expect, it } from 'vitest';
import { applySidChanges, checkSidChanges } from './sids.js';

/** SID changes as suricata-update makes them, on rule text. */

const vendor = [
  'alert http any any -> any any (msg:"a"; content:"A"; sid:1; rev:1;)',
  '# alert http any any -> any any (msg:"b"; content:"B"; sid:2; rev:1;)',
  'alert tls any any -> any any (msg:"c"; classtype:trojan-activity; sid:3; rev:1;)',
].join('\n');
const extra = 'alert http any any -> any any (msg:"et"; content:"ET"; sid:2000001; rev:1;)';
const sources = [
  { group: 'vendor', text: vendor },
  { group: 'et', text: extra },
];
const enabled = (text: string) => text.split('\n').filter((l) => /^(alert|drop)\s/.test(l));

describe('applySidChanges', () => {
  it('without changes keeps every rule as shipped (commented ones stay commented), each source named', () => {
    const { text, report } = applySidChanges(sources, []);
    expect(enabled(text)).toHaveLength(3);
    expect(text).toContain('# source: vendor');
    expect(text).toContain('# source: et');
    expect(report.rules).toBe(3);
  });

  it('disables by sid, enables a commented rule, turns alert into drop by group, modifies by regex', () => {
    const { text, report } = applySidChanges(sources, [
      { action: 'disable', match: '1' },
      { action: 'enable', match: '2' },
      { action: 'drop', match: 'group:et' },
      { action: 'modify', match: 're:classtype:trojan', from: 'msg:"c"', to: 'msg:"c (local)"' },
    ]);
    expect(report.matched).toEqual([1, 1, 1, 1]);
    expect(text).toContain('# alert http any any -> any any (msg:"a"');
    expect(enabled(text)).toEqual([
      'alert http any any -> any any (msg:"b"; content:"B"; sid:2; rev:1;)',
      'alert tls any any -> any any (msg:"c (local)"; classtype:trojan-activity; sid:3; rev:1;)',
      'drop http any any -> any any (msg:"et"; content:"ET"; sid:2000001; rev:1;)',
    ]);
  });

  it('a sid matches the sid option only, not a number elsewhere in the rule', () => {
    const { report } = applySidChanges(
      [{ group: 'vendor', text: 'alert ip any any -> any any (msg:"sid 1"; gid:1; sid:11; rev:1;)' }],
      [{ action: 'disable', match: '1' }],
    );
    expect(report.matched).toEqual([0]);
  });
});

describe('checkSidChanges', () => {
  it('accepts well-formed changes and names each bad one', () => {
    expect(() => checkSidChanges([{ action: 'modify', match: '5', from: 'a', to: 'b' }])).not.toThrow();
    expect(() =>
      checkSidChanges([
        { action: 'disable', match: 'abc' },
        { action: 'modify', match: 're:(' },
        { action: 'drop', match: '1', from: 'x' },
      ]),
    ).toThrow(expect.objectContaining({ code: 'REQUEST_INVALID' }));
  });
});
