import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The shipped Prometheus files pass promtool (Debian's `prometheus` package,
 * installed by appliance/provision.sh): the config and the rules check, and the rules'
 * unit tests (portcullis.rules.test.yml) pass.
 */
const here = dirname(fileURLToPath(import.meta.url));

function promtool(args: readonly string[], cwd = here): { code: number; output: string } {
  const r = spawnSync('promtool', args, { cwd, encoding: 'utf8', timeout: 120_000 });
  if (r.error)
    throw new Error(
      `promtool did not run (${r.error.message}): install Debian's prometheus package (appliance/provision.sh)`,
    );
  return { code: r.status ?? -1, output: `${r.stdout}${r.stderr}` };
}

describe('appliance/prometheus', () => {
  it('has a scrape config promtool accepts', () => {
    const r = promtool(['check', 'config', '--syntax-only', 'prometheus.yml']);
    expect(r.output).toContain('SUCCESS');
    expect(r.code).toBe(0);
  });

  it('has recording and alert rules promtool accepts', () => {
    const r = promtool(['check', 'rules', 'portcullis.rules.yml']);
    expect(r.output).toMatch(/SUCCESS: \d+ rules found/);
    expect(r.code).toBe(0);
  });

  it("passes the rules' unit tests", () => {
    const r = promtool(['test', 'rules', 'portcullis.rules.test.yml']);
    expect(r.output).toContain('SUCCESS');
    expect(r.code).toBe(0);
  }, 120_000);

  it('fails a rules test whose expectation is wrong (a positive control for the test above)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-rules-'));
    try {
      writeFileSync(join(dir, 'portcullis.rules.yml'), readFileSync(join(here, 'portcullis.rules.yml')));
      // the appliance answers every scrape: PortcullisDown must not fire, but this test says it does
      writeFileSync(
        join(dir, 'wrong.test.yml'),
        [
          'rule_files: [portcullis.rules.yml]',
          'tests:',
          '  - interval: 1m',
          '    input_series:',
          `      - series: 'up{job="portcullis",instance="a"}'`,
          `        values: '1x10'`,
          '    alert_rule_test:',
          '      - eval_time: 5m',
          '        alertname: PortcullisDown',
          '        exp_alerts:',
          '          - exp_labels: { severity: critical, job: portcullis, instance: a }',
          '',
        ].join('\n'),
      );
      const r = promtool(['test', 'rules', 'wrong.test.yml'], dir);
      expect(r.output).toContain('FAILED');
      expect(r.code).not.toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
