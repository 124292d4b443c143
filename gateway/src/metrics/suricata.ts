import { Counter, Gauge, type Registry } from 'prom-client';
import { isPortcullisError } from '../errors.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import type { RulesetStats, SuricataCounters } from '../suricata/control.js';

/**
 * Suricata's own counters through its command socket (`dump-counters`,
 * `ruleset-stats`), read when Prometheus scrapes:
 *
 * - `portcullis_suricata_up`: 1 when the command socket answered this scrape, else 0
 * - `portcullis_suricata_uptime_seconds`
 * - `portcullis_suricata_kernel_packets_total`: packets Suricata took from the kernel
 *   (NFQUEUE or AF_PACKET: `decoder.pkts`)
 * - `portcullis_suricata_kernel_drops_total`: packets the kernel dropped before
 *   Suricata read them (AF_PACKET's `capture.kernel_drops`; NFQUEUE has none: a full
 *   queue fails open or closed per profile)
 * - `portcullis_suricata_verdicts_total{verdict}`: inline verdicts (`ips.accepted`,
 *   `blocked`, `rejected`, `replaced`)
 * - `portcullis_suricata_bypassed_flows_total`: flows that ended bypassed (left the
 *   queue: `flow.end.state.local_bypassed` + `capture_bypassed`)
 * - `portcullis_suricata_memcap_hits_total{counter}`: every `*memcap*` counter of the
 *   tree (`flow.memcap`, `tcp.ssn_memcap_drop`, `tcp.segment_memcap_drop`,
 *   `http.memcap`, `ftp.memcap`, …: bounded by Suricata's counter tree)
 * - `portcullis_suricata_memcap_pressure_ratio`: `memcap_pressure` / 100
 * - `portcullis_suricata_rules_loaded`, `portcullis_suricata_rules_failed`: of the
 *   detection engine in force (`ruleset-stats`)
 */

/** What one reading of the socket gives. */
export interface SuricataSample {
  readonly uptime: number;
  readonly kernelPackets: number;
  readonly kernelDrops: number;
  readonly verdicts: Readonly<Record<'accepted' | 'blocked' | 'rejected' | 'replaced', number>>;
  readonly bypassedFlows: number;
  readonly memcaps: ReadonlyMap<string, number>;
  readonly memcapPressure: number;
  readonly rulesLoaded: number;
  readonly rulesFailed: number;
}

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

/** The sample of a `dump-counters` tree and `ruleset-stats` answer; absent counters are 0. Pure. */
export function suricataSample(counters: SuricataCounters, rules: readonly RulesetStats[]): SuricataSample {
  const at = (path: string): unknown =>
    path
      .split('.')
      .reduce<unknown>(
        (o, k) => (o !== null && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined),
        counters,
      );
  const memcaps = new Map<string, number>();
  const walk = (o: unknown, prefix: string): void => {
    if (o === null || typeof o !== 'object') return;
    for (const [k, v] of Object.entries(o as Record<string, unknown>)) {
      const path = prefix + k;
      if (typeof v === 'object') walk(v, `${path}.`);
      else if (k.includes('memcap') && !k.startsWith('memcap_pressure') && typeof v === 'number')
        memcaps.set(path, v);
    }
  };
  walk(counters, '');
  return {
    uptime: num(counters.uptime),
    kernelPackets: num(at('decoder.pkts')),
    kernelDrops: num(at('capture.kernel_drops')),
    verdicts: {
      accepted: num(at('ips.accepted')),
      blocked: num(at('ips.blocked')),
      rejected: num(at('ips.rejected')),
      replaced: num(at('ips.replaced')),
    },
    bypassedFlows: num(at('flow.end.state.local_bypassed')) + num(at('flow.end.state.capture_bypassed')),
    memcaps,
    memcapPressure: num(at('memcap_pressure')) / 100,
    rulesLoaded: rules.reduce((s, r) => s + num(r.rules_loaded), 0),
    rulesFailed: rules.reduce((s, r) => s + num(r.rules_failed), 0),
  };
}

/** What the collector asks Suricata (a `SuricataControl`). */
export interface SuricataSource {
  dumpCounters(): Promise<SuricataCounters>;
  rulesetStats(): Promise<readonly RulesetStats[]>;
}

export interface SuricataMetricsOptions {
  readonly registry: Registry;
  /** The inline instance's command socket; undefined while the IPS is off. */
  readonly source: () => SuricataSource | undefined;
  /** How long one reading serves further collects, in ms. Default 1,000. */
  readonly maxAgeMs?: number;
  /**
   * How long a scrape waits for Suricata's answers, in ms; longer counts as down.
   * Default 800 (an idle Suricata answers in milliseconds; a starting one not at all,
   * and the scrape must finish within Prometheus' scrape timeout).
   */
  readonly timeoutMs?: number;
  readonly log?: Logger;
}

/** Registers the metrics above; they ask Suricata when collected. */
export class SuricataMetrics {
  readonly #o: SuricataMetricsOptions;
  readonly #log: Logger;
  #reading: { at: number; done: boolean; readonly sample: Promise<SuricataSample | undefined> } | undefined;
  #lastError = '';

  constructor(options: SuricataMetricsOptions) {
    this.#o = options;
    this.#log = options.log ?? silentLogger;
    const registers = [options.registry];
    const up: Gauge = new Gauge({
      name: 'portcullis_suricata_up',
      help: "Whether Suricata's command socket answered this scrape (1) or not (0)",
      registers,
      collect: async () => up.set((await this.#sample()) === undefined ? 0 : 1),
    });
    const gauge = (name: string, help: string, value: (s: SuricataSample) => number): void => {
      const g: Gauge = new Gauge({
        name,
        help,
        registers,
        collect: async () => {
          const s = await this.#sample();
          if (s === undefined) g.reset();
          else g.set(value(s));
        },
      });
    };
    const counter = (
      name: string,
      help: string,
      labelNames: readonly string[],
      fill: (s: SuricataSample, set: (labels: Record<string, string>, value: number) => void) => void,
    ): void => {
      const c: Counter<string> = new Counter({
        name,
        help,
        labelNames,
        registers,
        collect: async () => {
          const s = await this.#sample();
          c.reset();
          if (s !== undefined) fill(s, (labels, value) => c.inc(labels, value));
        },
      });
    };
    gauge('portcullis_suricata_uptime_seconds', 'Seconds since Suricata started', (s) => s.uptime);
    counter(
      'portcullis_suricata_kernel_packets_total',
      'Packets Suricata took from the kernel (NFQUEUE or AF_PACKET)',
      [],
      (s, set) => set({}, s.kernelPackets),
    );
    counter(
      'portcullis_suricata_kernel_drops_total',
      'Packets the kernel dropped before Suricata read them (AF_PACKET)',
      [],
      (s, set) => set({}, s.kernelDrops),
    );
    counter(
      'portcullis_suricata_verdicts_total',
      "Suricata's inline verdicts, by verdict (accepted, blocked, rejected, replaced)",
      ['verdict'],
      (s, set) => {
        for (const [verdict, n] of Object.entries(s.verdicts)) set({ verdict }, n);
      },
    );
    counter(
      'portcullis_suricata_bypassed_flows_total',
      'Flows that ended bypassed (they left the queue after inspection)',
      [],
      (s, set) => set({}, s.bypassedFlows),
    );
    counter(
      'portcullis_suricata_memcap_hits_total',
      "Times a Suricata memcap was hit, by Suricata's counter",
      ['counter'],
      (s, set) => {
        for (const [name, n] of s.memcaps) set({ counter: name }, n);
      },
    );
    gauge(
      'portcullis_suricata_memcap_pressure_ratio',
      'How full the fullest Suricata memcap is (0..1)',
      (s) => s.memcapPressure,
    );
    gauge(
      'portcullis_suricata_rules_loaded',
      'Rules the detection engine in force loaded',
      (s) => s.rulesLoaded,
    );
    gauge(
      'portcullis_suricata_rules_failed',
      'Rules the detection engine in force failed to load',
      (s) => s.rulesFailed,
    );
  }

  /** The sample of the reading in force; undefined when Suricata is off or did not answer. */
  #sample(): Promise<SuricataSample | undefined> {
    const now = performance.now();
    const reading = this.#reading;
    // a reading in flight serves every metric of the scrape; a done one, for maxAgeMs
    if (reading !== undefined && (!reading.done || now - reading.at < (this.#o.maxAgeMs ?? 1000)))
      return reading.sample;
    const source = this.#o.source();
    const sample =
      source === undefined
        ? Promise.resolve(undefined)
        : withTimeout(
            Promise.all([
              // Suricata refuses the counters until its stats thread ran once: it is up
              source.dumpCounters().catch((err: unknown) => {
                if (isPortcullisError(err, 'SURICATA_COMMAND_REJECTED')) return {};
                throw err;
              }),
              source.rulesetStats(),
            ]),
            this.#o.timeoutMs ?? 800,
          )
            .then(([counters, rules]) => {
              this.#lastError = '';
              return suricataSample(counters, rules);
            })
            .catch((err: unknown) => {
              // once per change of error: a Suricata that is down would log every scrape
              const text = err instanceof Error ? err.message : String(err);
              if (text !== this.#lastError) this.#log.warn({ err }, "could not read Suricata's counters");
              this.#lastError = text;
              return undefined;
            });
    const next = { at: now, done: false, sample };
    this.#reading = next;
    void sample.then(() => {
      next.done = true;
      next.at = performance.now();
    });
    return sample;
  }
}

/** `p`, or a rejection after `ms`. */
function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Suricata did not answer within ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
