import { readFileSync } from 'node:fs';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { PortcullisError } from '../errors.js';
import type { SuricataCounters } from '../suricata/control.js';
import { SuricataMetrics, suricataSample, type SuricataSource } from './suricata.js';

/** The counters of a real Suricata 7.0.10 (the stats event of the EVE fixture), plus inline verdicts. */
const real = (): SuricataCounters => {
  const line = readFileSync(
    new URL('../../../test/fixtures/eve/suricata-7.0.10.eve.jsonl', import.meta.url),
    'utf8',
  )
    .split('\n')
    .find((l) => l.includes('"event_type":"stats"'))!;
  const stats = (JSON.parse(line) as { stats: SuricataCounters }).stats;
  return { ...stats, ips: { accepted: 40, blocked: 2, rejected: 1, replaced: 0 } };
};

describe('suricataSample', () => {
  it("maps Suricata's counter tree: packets, verdicts, bypassed flows, every memcap counter, the rules", () => {
    const s = suricataSample(real(), [{ id: 0, rules_loaded: 12, rules_failed: 1 }]);
    expect(s.kernelPackets).toBe(1);
    expect(s.verdicts).toEqual({ accepted: 40, blocked: 2, rejected: 1, replaced: 0 });
    expect([...s.memcaps.keys()].sort()).toEqual([
      'flow.memcap',
      'ftp.memcap',
      'http.memcap',
      'tcp.segment_memcap_drop',
      'tcp.ssn_memcap_drop',
    ]);
    expect(s.memcapPressure).toBe(0.05);
    expect(s).toMatchObject({ rulesLoaded: 12, rulesFailed: 1, bypassedFlows: 0, kernelDrops: 0 });
  });

  it('reads AF_PACKET kernel drops and bypassed flows where the tree has them; absent is 0', () => {
    const s = suricataSample(
      {
        capture: { kernel_packets: 9, kernel_drops: 3 },
        flow: { end: { state: { local_bypassed: 4, capture_bypassed: 1 } } },
      } as SuricataCounters,
      [],
    );
    expect(s).toMatchObject({ kernelDrops: 3, bypassedFlows: 5, kernelPackets: 0, rulesLoaded: 0 });
  });
});

describe('SuricataMetrics', () => {
  const setup = (source: SuricataSource | undefined): Registry => {
    const registry = new Registry();
    new SuricataMetrics({ registry, source: () => source, maxAgeMs: 0 });
    return registry;
  };

  it('reports Suricata up with its counters when the command socket answers', async () => {
    const text = await setup({
      dumpCounters: async () => real(),
      rulesetStats: async () => [{ id: 0, rules_loaded: 12, rules_failed: 1 }],
    }).metrics();
    expect(text).toContain('portcullis_suricata_up 1');
    expect(text).toContain('portcullis_suricata_verdicts_total{verdict="blocked"} 2');
    expect(text).toContain('portcullis_suricata_memcap_hits_total{counter="flow.memcap"} 0');
    expect(text).toContain('portcullis_suricata_rules_loaded 12');
    expect(text).toContain('portcullis_suricata_rules_failed 1');
  });

  it('reports it down, its counters at 0 (none stale), when the socket does not answer', async () => {
    const text = await setup({
      dumpCounters: async () => {
        throw new PortcullisError('SURICATA_FAILED', 'cannot talk to Suricata: ENOENT');
      },
      rulesetStats: async () => [],
    }).metrics();
    expect(text).toContain('portcullis_suricata_up 0');
    expect(text).toContain('portcullis_suricata_rules_loaded 0');
    expect(text).not.toContain('portcullis_suricata_verdicts_total{');
  });

  it('counts Suricata up while it refuses the counters before its first stats interval', async () => {
    const text = await setup({
      dumpCounters: async () => {
        throw new PortcullisError('SURICATA_COMMAND_REJECTED', 'stats not yet synchronized');
      },
      rulesetStats: async () => [{ id: 0, rules_loaded: 3, rules_failed: 0 }],
    }).metrics();
    expect(text).toContain('portcullis_suricata_up 1');
    expect(text).toContain('portcullis_suricata_rules_loaded 3');
  });
});

describe('SuricataMetrics, a Suricata that does not answer', () => {
  it('counts it down after the timeout instead of holding the scrape', async () => {
    const registry = new Registry();
    new SuricataMetrics({
      registry,
      source: () => ({ dumpCounters: () => new Promise(() => {}), rulesetStats: async () => [] }),
      timeoutMs: 50,
      maxAgeMs: 0,
    });
    const started = performance.now();
    expect(await registry.metrics()).toContain('portcullis_suricata_up 0');
    expect(performance.now() - started).toBeLessThan(5_000);
  });
});
