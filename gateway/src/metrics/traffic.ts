import { Counter, type Registry } from 'prom-client';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import type { CounterValue } from '../nft/counters.js';
import { VM_DROP_REASONS, vmCounter, vmCounterIn, vmDropCounter } from '../nft/names.js';

/**
 * Per-VM traffic and drops from the kernel's named counters, read when Prometheus
 * scrapes (one terse `nft list ruleset`, about 0.1 s, shared by every metric of the
 * scrape and reused for `maxAgeMs`).
 *
 * - `portcullis_vm_bytes_total{vm,direction}`, `portcullis_vm_packets_total{vm,direction}`:
 *   `out` = from the VM (its chain), `in` = to the VM (`to_guests`)
 * - `portcullis_vm_drops_total{vm,reason}`: packets dropped or rejected, by
 *   `VM_DROP_REASONS` (policy, schedule, pause, budget, ips, bypass, quarantine)
 * - `portcullis_drops_total{reason}`: drops no VM owns: `spoofing` (a registered MAC
 *   with another address, or an unknown MAC), `ipv6`, `input` (guests to the
 *   appliance), `deny_list` (policy and bundle deny lists, every VM), `forward` (the
 *   forward chain's default)
 *
 * Labels are bounded: `vm` takes only the names of the policy's VMs (a VM removed from
 * the policy loses its series at the next scrape), so per VM there are 4 traffic and 7
 * drop series; `portcullis_drops_total` has 5.
 */

/** Kernel counters of drops no VM owns, by the reason they are reported under. */
export const SHARED_DROP_COUNTERS: Readonly<Record<string, readonly string[]>> = {
  spoofing: ['spoof_dropped', 'unknown_mac_dropped'],
  ipv6: ['ipv6_dropped'],
  input: ['guest_input_dropped'],
  deny_list: ['deny_list_dropped'],
  forward: ['forward_dropped'],
};

/** One scrape's worth of series. */
export interface TrafficSeries {
  readonly traffic: ReadonlyArray<{
    readonly vm: string;
    readonly direction: 'in' | 'out';
    readonly packets: number;
    readonly bytes: number;
  }>;
  readonly vmDrops: ReadonlyArray<{ readonly vm: string; readonly reason: string; readonly packets: number }>;
  readonly drops: ReadonlyArray<{ readonly reason: string; readonly packets: number }>;
}

/**
 * The series of `vms` (the policy's, in its order) from the table's counters. A VM
 * whose counters are not in the kernel (yet) reports zeros. Pure.
 */
export function trafficSeries(
  counters: ReadonlyMap<string, CounterValue>,
  vms: readonly string[],
): TrafficSeries {
  const zero: CounterValue = { packets: 0, bytes: 0 };
  const get = (name: string): CounterValue => counters.get(name) ?? zero;
  const traffic: Array<TrafficSeries['traffic'][number]> = [];
  const vmDrops: Array<TrafficSeries['vmDrops'][number]> = [];
  for (const vm of vms) {
    traffic.push({ vm, direction: 'out', ...get(vmCounter(vm)) });
    traffic.push({ vm, direction: 'in', ...get(vmCounterIn(vm)) });
    for (const reason of VM_DROP_REASONS)
      vmDrops.push({ vm, reason, packets: get(vmDropCounter(vm, reason)).packets });
  }
  const drops = Object.entries(SHARED_DROP_COUNTERS).map(([reason, names]) => ({
    reason,
    packets: names.reduce((sum, n) => sum + get(n).packets, 0),
  }));
  return { traffic, vmDrops, drops };
}

export interface TrafficMetricsOptions {
  readonly registry: Registry;
  /** Read the table's named counters (`readCounters` with the listing backend). */
  readonly read: () => Promise<ReadonlyMap<string, CounterValue>>;
  /** The names of the policy's VMs now: the only values the `vm` label takes. */
  readonly vms: () => readonly string[];
  /** How long one reading serves further collects, in ms. Default 1,000. */
  readonly maxAgeMs?: number;
  readonly log?: Logger;
}

/** The collector: registers the metrics above; they read the kernel when collected. */
export class TrafficMetrics {
  readonly #o: TrafficMetricsOptions;
  readonly #log: Logger;
  readonly #errors: Counter;
  #reading: { at: number; done: boolean; readonly series: Promise<TrafficSeries | undefined> } | undefined;

  constructor(options: TrafficMetricsOptions) {
    this.#o = options;
    this.#log = options.log ?? silentLogger;
    const registers = [options.registry];
    const errors = new Counter({
      name: 'portcullis_vm_traffic_read_errors_total',
      help: 'Scrapes whose reading of the kernel counters failed (the VM traffic and drop series kept their last values)',
      registers,
      // this scrape's reading counts in this scrape
      collect: async () => {
        await this.#series();
      },
    });
    this.#errors = errors;
    const mirror = (
      name: string,
      help: string,
      labelNames: readonly string[],
      fill: (series: TrafficSeries, set: (labels: Record<string, string>, value: number) => void) => void,
    ): void => {
      const metric: Counter<string> = new Counter({
        name,
        help,
        labelNames,
        registers,
        collect: async () => {
          const series = await this.#series();
          if (series === undefined) return;
          // the kernel's cumulative values, as they are: a VM gone from the policy leaves
          metric.reset();
          fill(series, (labels, value) => metric.inc(labels, value));
        },
      });
    };
    mirror(
      'portcullis_vm_bytes_total',
      'Bytes forwarded from (out) and to (in) each VM, from the kernel counters',
      ['vm', 'direction'],
      (s, set) => {
        for (const t of s.traffic) set({ vm: t.vm, direction: t.direction }, t.bytes);
      },
    );
    mirror(
      'portcullis_vm_packets_total',
      'Packets forwarded from (out) and to (in) each VM, from the kernel counters',
      ['vm', 'direction'],
      (s, set) => {
        for (const t of s.traffic) set({ vm: t.vm, direction: t.direction }, t.packets);
      },
    );
    mirror(
      'portcullis_vm_drops_total',
      'Packets of each VM the kernel dropped or rejected, by reason (policy, schedule, pause, budget, ips, bypass, quarantine)',
      ['vm', 'reason'],
      (s, set) => {
        for (const d of s.vmDrops) set({ vm: d.vm, reason: d.reason }, d.packets);
      },
    );
    mirror(
      'portcullis_drops_total',
      'Packets the kernel dropped before they belonged to a VM, by reason (spoofing, ipv6, input, deny_list, forward)',
      ['reason'],
      (s, set) => {
        for (const d of s.drops) set({ reason: d.reason }, d.packets);
      },
    );
  }

  /** The series of the reading in force, reading the kernel when the last one is older than maxAgeMs. */
  #series(): Promise<TrafficSeries | undefined> {
    const now = performance.now();
    const reading = this.#reading;
    // a reading in flight serves every metric of the scrape; a done one, for maxAgeMs
    if (reading !== undefined && (!reading.done || now - reading.at < (this.#o.maxAgeMs ?? 1000)))
      return reading.series;
    const series = this.#o
      .read()
      .then((counters) => trafficSeries(counters, this.#o.vms()))
      .catch((err: unknown) => {
        this.#errors.inc();
        this.#log.warn({ err }, 'could not read the kernel counters for the metrics');
        return undefined;
      });
    const next = { at: now, done: false, series };
    this.#reading = next;
    void series.then(() => {
      next.done = true;
      next.at = performance.now();
    });
    return series;
  }
}
