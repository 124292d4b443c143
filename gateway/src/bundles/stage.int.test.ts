import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { applianceSuricataSetup } from '../suricata/ips.js';
import { stageBundle, suricataRuleTester } from './stage.js';

/**
 * Staging against the real Suricata: `suricata -T` with the configuration the service
 * renders, the bundle's enforced rules in place of the first rule file. Needs suricata.
 */

const have = spawnSync('suricata', ['-V']).status === 0;
const tmp = mkdtempSync(join(tmpdir(), 'up-stage-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function version(rules: string, list = 'example.test\n'): string {
  const dir = mkdtempSync(join(tmp, 'v-'));
  writeFileSync(join(dir, 'suricata.rules'), rules);
  mkdirSync(join(dir, 'lists', 'categories'), { recursive: true });
  writeFileSync(join(dir, 'lists', 'categories', 'adult.txt'), list);
  return dir;
}

describe.skipIf(!have)(`staging with suricata -T${have ? '' : ' (skipped: needs suricata)'}`, () => {
  const local = join(tmp, 'local.rules');
  writeFileSync(local, 'pass ip any any -> any any (msg:"local"; sid:1000001; rev:1;)\n');
  const setup = applianceSuricataSetup(tmp, 0, [join(tmp, 'placeholder.rules'), local], ['10.20.0.0/24']);
  const test = suricataRuleTester(setup, { timeoutMs: 60_000 });

  it('accepts rules Suricata loads, and a SID change that keeps them loadable', async () => {
    const dir = version(
      'drop http any any -> any any (msg:"x"; content:"EVIL"; http_uri; sid:3000100; rev:1;)\n',
    );
    const staged = await stageBundle({ dir, test, sids: [{ action: 'disable', match: '3000100' }] });
    expect(staged.sids.rules).toBe(0);
    expect(staged.lists).toEqual([{ path: 'lists/categories/adult.txt', entries: 1 }]);
  }, 60_000);

  it('refuses a rule Suricata cannot parse: BUNDLE_RULES_INVALID naming Suricata’s error', async () => {
    const dir = version(
      'drop http any any -> any any (msg:"y"; nosuchkeyword:"EVIL"; sid:3000101; rev:1;)\n',
    );
    await expect(stageBundle({ dir, test })).rejects.toMatchObject({
      code: 'BUNDLE_RULES_INVALID',
      message: expect.stringContaining('nosuchkeyword'),
    });
    // control: the same rule disabled by a SID change passes
    await expect(
      stageBundle({ dir, test, sids: [{ action: 'disable', match: '3000101' }] }),
    ).resolves.toBeDefined();
  }, 60_000);

  it('refuses a list with a bad line: BUNDLE_LISTS_INVALID naming file and line', async () => {
    const dir = version('', 'example.test\nnot a domain!\n');
    await expect(stageBundle({ dir, test })).rejects.toMatchObject({
      code: 'BUNDLE_LISTS_INVALID',
      message: expect.stringMatching(/lists\/categories\/adult\.txt.*2/),
    });
  }, 60_000);
});
