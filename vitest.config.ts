import { defineConfig } from 'vitest/config';

/**
 * Two projects:
 * - unit: pure logic and small adapters, beside their sources; parallel.
 * - lab: real kernel, real Suricata, real traffic in network namespaces under test/;
 *   one lab at a time, so files run one after another. Needs root.
 */
export default defineConfig({
  test: {
    reporters: ['default', './test/summary-reporter.ts'],
    projects: [
      {
        test: {
          name: 'unit',
          include: [
            'gateway/src/**/*.test.ts',
            'rules/**/*.test.ts',
            'dashboard/**/*.test.ts',
            'appliance/prometheus/*.test.ts',
            'appliance/libvirt/*.test.ts',
            'appliance/polkit/*.test.ts',
          ],
          environment: 'node',
        },
      },
      {
        test: {
          name: 'lab',
          include: ['test/**/*.test.ts'],
          environment: 'node',
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
