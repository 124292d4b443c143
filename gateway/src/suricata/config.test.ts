import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { isPortcullisError } from '../errors.js';
import { MARK } from '../nft/marks.js';
import {
  checkSuricataSetup,
  NFQ_MARK,
  renderSuricataConfig,
  suricataArgs,
  type SuricataSetup,
} from './config.js';

const golden = fileURLToPath(new URL('./fixtures/suricata.golden.yaml', import.meta.url));

function makeSetup(overrides: Partial<SuricataSetup> = {}): SuricataSetup {
  return {
    configFile: '/var/lib/portcullis/suricata/suricata.yaml',
    logDir: '/var/lib/portcullis/suricata/log',
    pidFile: '/run/portcullis/suricata.pid',
    commandSocket: '/run/portcullis/suricata-command.sock',
    eveSocket: '/run/portcullis/eve.sock',
    ruleFiles: [
      '/var/lib/portcullis/bundles/current/suricata.rules',
      '/var/lib/portcullis/suricata/local.rules',
    ],
    nfq: { queue: 0, failOpen: true },
    homeNet: ['10.20.0.0/24', 'fd00:20::/64'],
    ...overrides,
  };
}

describe('renderSuricataConfig', () => {
  it('renders the appliance configuration (golden)', async () => {
    const text = renderSuricataConfig(makeSetup());
    if (process.env.UPDATE_GOLDEN) await writeFile(golden, text);
    expect(text).toBe(await readFile(golden, 'utf8'));
  });

  it('is deterministic', () => {
    expect(renderSuricataConfig(makeSetup())).toBe(renderSuricataConfig(makeSetup()));
  });

  it('includes the base configuration first, then overrides it', () => {
    const lines = renderSuricataConfig(makeSetup({ baseConfig: '/etc/suricata/other.yaml' })).split('\n');
    expect(lines.slice(0, 2)).toEqual(['%YAML 1.1', '---']);
    expect(lines.find((l) => !l.startsWith('#') && !l.startsWith('%') && l !== '---')).toBe(
      'include: /etc/suricata/other.yaml',
    );
  });

  it('turns bypass off, accept mode and fail-closed on request', () => {
    const text = renderSuricataConfig(
      makeSetup({
        bypass: { stream: false, tls: false },
        nfq: { queue: 3, mode: 'accept', failOpen: false },
        homeNet: undefined,
      }),
    );
    expect(text).toContain('stream.bypass: no\n');
    expect(text).toContain('app-layer.protocols.tls.encryption-handling: default\n');
    expect(text).toContain('  mode: accept\n');
    expect(text).toContain('  fail-open: no\n');
    expect(text).not.toContain('HOME_NET');
  });

  it('lists only the EVE types asked for', () => {
    const text = renderSuricataConfig(makeSetup({ eveTypes: ['alert', 'flow'] }));
    expect(text).toMatch(/types:\n {8}- alert:\n( {12}.*\n)+ {8}- flow\n$/);
  });

  it('quotes what YAML would misread', () => {
    const text = renderSuricataConfig(makeSetup({ ruleFiles: ['/rules/a b.rules', '/rules/yes'] }));
    expect(text).toContain('  - "/rules/a b.rules"\n  - /rules/yes\n');
  });
});

describe('checkSuricataSetup', () => {
  it('reports every problem at once', () => {
    let err: unknown;
    try {
      checkSuricataSetup(
        makeSetup({
          logDir: 'log',
          ruleFiles: [],
          nfq: { queue: 70000 },
          streamDepth: 10,
          homeNet: ['lan'],
          eveSocket: '/run/"x"',
        }),
      );
    } catch (e) {
      err = e;
    }
    expect(isPortcullisError(err, 'CONFIG_INVALID')).toBe(true);
    const paths = (err as { context: { issues: { path: string }[] } }).context.issues.map((i) => i.path);
    expect(paths).toEqual([
      '/logDir',
      '/eveSocket',
      '/ruleFiles',
      '/nfq/queue',
      '/streamDepth',
      '/homeNet/0',
    ]);
  });

  it('accepts the appliance setup', () => {
    expect(() => checkSuricataSetup(makeSetup())).not.toThrow();
  });
});

describe('suricataArgs', () => {
  it('runs NFQ mode on the queue with the generated config and pid file', () => {
    expect(suricataArgs(makeSetup({ nfq: { queue: 5 } }))).toEqual([
      '-c',
      '/var/lib/portcullis/suricata/suricata.yaml',
      '-q',
      '5',
      '--pidfile',
      '/run/portcullis/suricata.pid',
    ]);
  });
});

describe('NFQ_MARK', () => {
  it('shares the bypass bit with the nft compiler and collides with none of its marks', () => {
    expect(NFQ_MARK.bypass).toBe(MARK.bypass);
    expect(NFQ_MARK.repeat & (MARK.queueClosed | MARK.queueOpen | MARK.bypass)).toBe(0);
    // a single bit each, so masks can be the marks themselves
    for (const m of Object.values(NFQ_MARK)) expect(m & (m - 1)).toBe(0);
  });
});
