import type { BlockDecision, NotifyDecision, QuarantineDecision, RecordDecision } from './engine.js';

/** Decisions for one alert, as the engine makes them. Test data; not used by the service. */

export const ALERT: RecordDecision = {
  kind: 'record',
  vm: 'kid',
  timestamp: '2026-12-02T22:00:00.000000+0000',
  gid: 1,
  sid: 2_100_498,
  rev: 7,
  signature: 'GPL ATTACK_RESPONSE id check returned root',
  category: 'Potentially Bad Traffic',
  severity: 2,
  action: 'allowed',
  src: '192.0.2.7',
  dest: '10.20.0.11',
  remote: '192.0.2.7',
  flowId: 42,
};

export const BLOCK: BlockDecision = {
  kind: 'block',
  vm: 'kid',
  remote: '192.0.2.7',
  until: Date.parse('2026-12-02T23:00:00Z'),
  seconds: 3600,
  sid: 2_100_498,
  reason: 'sid 2100498',
  reassert: false,
};

export const QUARANTINE: QuarantineDecision = {
  kind: 'quarantine',
  vm: 'kid',
  reason: '3 alerts in 60 s',
  at: Date.parse('2026-12-02T22:00:00Z'),
  sids: [1, 2, 2_100_498],
};

export const NOTIFY: NotifyDecision = {
  kind: 'notify',
  url: 'http://127.0.0.1:9/hook',
  vm: 'kid',
  payload: {
    event: 'alert',
    vm: 'kid',
    at: '2026-12-02T22:00:00.000Z',
    sid: 2_100_498,
    signature: 'GPL ATTACK_RESPONSE id check returned root',
    severity: 2,
    remote: '192.0.2.7',
    actions: ['block'],
  },
};
