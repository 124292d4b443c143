import { describe, expect, it } from 'vitest';
import { judgeHealth, parseQueueStats, type HealthSample } from './health.js';

/** The health check's decisions on Suricata's ruleset stats and the kernel's queue stats. */

const PROC = `    0  12345     0 2 65531     0     0     4711  1
    7      0     3 2 65531     1     2       10  1
`;

const q = (over: Partial<NonNullable<HealthSample['queue']>> = {}) => ({
  queue: 0,
  portId: 12345,
  waiting: 0,
  queueDropped: 0,
  userDropped: 0,
  sequence: 100,
  ...over,
});
const ok: HealthSample = { pid: 42, answers: true, queue: q() };
const stats = [{ id: 0, rules_loaded: 10, rules_failed: 0 }];

describe('parseQueueStats', () => {
  it('reads /proc/net/netfilter/nfnetlink_queue', () => {
    expect(parseQueueStats(PROC)).toEqual([
      { queue: 0, portId: 12345, waiting: 0, queueDropped: 0, userDropped: 0, sequence: 4711 },
      { queue: 7, portId: 0, waiting: 3, queueDropped: 1, userDropped: 2, sequence: 10 },
    ]);
  });
});

describe('judgeHealth', () => {
  it('healthy: rules loaded, none failed, the same Suricata answering, the queue read', () => {
    expect(
      judgeHealth(stats, [ok, ok, { ...ok, queue: q({ sequence: 200 }) }], { expectedRules: 10 }),
    ).toBeUndefined();
  });

  it.each([
    ['a rule failed', [{ id: 0, rules_loaded: 9, rules_failed: 1 }], [ok], /failed to load 1 rule/],
    ['fewer rules than enforced', [{ id: 0, rules_loaded: 5, rules_failed: 0 }], [ok], /loaded 5 rules/],
    [
      'Suricata stopped answering',
      stats,
      [ok, { pid: undefined, answers: false, queue: undefined }],
      /stopped answering/,
    ],
    ['Suricata restarted', stats, [ok, { ...ok, pid: 43 }], /restarted/],
    ['nobody reads the queue', stats, [ok, { ...ok, queue: undefined }], /nobody reads/],
    ['packets dropped from the queue', stats, [ok, { ...ok, queue: q({ queueDropped: 5 }) }], /dropped 5/],
    [
      'verdicts stalled',
      stats,
      [
        { ...ok, queue: q({ waiting: 600 }) },
        { ...ok, queue: q({ waiting: 900 }) },
      ],
      /wait in the IPS queue/,
    ],
  ] as const)('unhealthy: %s', (_name, s, samples, why) => {
    expect(judgeHealth(s, samples, { expectedRules: 10 })).toMatch(why);
  });
});
