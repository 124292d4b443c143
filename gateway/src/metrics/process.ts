import { collectDefaultMetrics, Gauge, type Registry } from 'prom-client';
import { portcullisVersion } from '../cli/version.js';

/**
 * The process's health: prom-client's default metrics (`portcullis_process_*`: CPU,
 * memory, heap, event loop lag, file descriptors, GC, start time) and
 * `portcullis_build_info{version,node}`. prom-client's three gauges named
 * `…_active_{handles,requests,resources}_total` are left out (promtool refuses that
 * suffix on a gauge); `portcullis_process_nodejs_active_{handles,requests,resources}`
 * by type say the same.
 */
export function collectProcessMetrics(registry: Registry): void {
  const prefix = 'portcullis_process_';
  collectDefaultMetrics({ register: registry, prefix });
  for (const name of ['active_handles_total', 'active_requests_total', 'active_resources_total'])
    registry.removeSingleMetric(`${prefix}nodejs_${name}`);
  let version: string | undefined;
  const info: Gauge<'version' | 'node'> = new Gauge({
    name: 'portcullis_build_info',
    help: 'The Portcullis version and Node version running (1)',
    labelNames: ['version', 'node'],
    registers: [registry],
    collect: () => {
      // read at the first scrape: building the app reads no file
      version ??= portcullisVersion();
      info.set({ version, node: process.version }, 1);
    },
  });
}
