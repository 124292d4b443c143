import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderSuricataConfig, type SuricataSetup } from './config.js';

/**
 * The rendered configuration as Suricata 7 reads it: `suricata -T` accepts it and
 * `--dump-config` shows the values meant, also for paths that YAML would misread if
 * written plain. Needs the suricata binary (installed by appliance/provision.sh).
 */

const have = spawnSync('suricata', ['-V']).status === 0;
const RULE = 'drop http any any -> any any (msg:"EVIL"; content:"EVIL"; sid:1000001; rev:1;)\n';

function suricata(args: readonly string[]): { status: number | null; out: string } {
  const r = spawnSync('suricata', [...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe.skipIf(!have)(
  `Suricata reads the rendered config${have ? '' : ' (skipped: needs suricata)'}`,
  () => {
    let dir: string;

    beforeAll(async () => {
      // a directory name with a space, a '#' and ': ' that plain YAML would cut short
      dir = join(await mkdtemp(join(tmpdir(), 'suricata-config-')), 'a dir #1: yes');
      await mkdir(join(dir, 'log'), { recursive: true });
      await writeFile(join(dir, 'local.rules'), RULE);
      await writeFile(join(dir, 'yes'), RULE.replace('sid:1000001', 'sid:1000002'));
    });
    afterAll(async () => {
      if (dir) await rm(join(dir, '..'), { recursive: true, force: true });
    });

    function setup(overrides: Partial<SuricataSetup> = {}): SuricataSetup {
      return {
        configFile: join(dir, 'suricata.yaml'),
        logDir: join(dir, 'log'),
        pidFile: join(dir, 'suricata.pid'),
        commandSocket: join(dir, 'command.sock'),
        eveSocket: join(dir, 'eve.sock'),
        ruleFiles: [join(dir, 'local.rules'), join(dir, 'yes')],
        nfq: { queue: 7, failOpen: true },
        homeNet: ['10.20.0.0/24', 'fd00:20::/64'],
        ...overrides,
      };
    }

    async function written(s: SuricataSetup): Promise<string> {
      await writeFile(s.configFile, renderSuricataConfig(s));
      return s.configFile;
    }

    it('passes suricata -T, inline on NFQUEUE and passive on AF_PACKET', async () => {
      for (const s of [setup(), setup({ afPacket: { interface: 'lo', bpfFilter: 'not port 22' } })]) {
        const r = suricata(['-T', '-c', await written(s), '-l', s.logDir]);
        expect(r, r.out).toMatchObject({ status: 0 });
        expect(r.out).toContain('Configuration provided was successfully loaded');
      }
    });

    it('refuses a config it cannot parse (the check above can fail)', async () => {
      const s = setup();
      await writeFile(s.configFile, `${renderSuricataConfig(s)}nfq: [\n`);
      expect(suricata(['-T', '-c', s.configFile, '-l', s.logDir]).status).not.toBe(0);
    });

    it('reads back the values meant', async () => {
      const s = setup();
      const dump = suricata(['--dump-config', '-c', await written(s)]);
      expect(dump.status).toBe(0);
      const values = new Map(
        dump.out
          .split('\n')
          .map((line) => line.split(' = '))
          .filter((kv) => kv.length === 2)
          .map(([k, v]) => [k!, v!]),
      );
      expect(Object.fromEntries(values)).toMatchObject({
        'default-log-dir': s.logDir,
        'vars.address-groups.HOME_NET': '[10.20.0.0/24,fd00:20::/64]',
        'rule-files.0': s.ruleFiles[0],
        'rule-files.1': s.ruleFiles[1],
        'unix-command.filename': s.commandSocket,
        'nfq.repeat-mark': '0x08000000',
        'nfq.bypass-mark': '0x40000000',
        'nfq.fail-open': 'yes',
        'stream.bypass': 'yes',
        'outputs.0.eve-log.filename': s.eveSocket,
      });
    });
  },
);
