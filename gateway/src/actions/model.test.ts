import { describe, expect, it } from 'vitest';
import { isPortcullisError } from '../errors.js';
import { BUILTIN_PROFILES } from '../policy/builtins.js';
import {
  BUILTIN_ALERT_ACTIONS,
  DEFAULT_ALERT_ACTIONS,
  checkAlertActions,
  parseAlertActions,
} from './model.js';

describe('AlertActions', () => {
  it('accepts a full configuration and an empty one (record only)', () => {
    expect(checkAlertActions({})).toEqual([]);
    expect(
      checkAlertActions({
        block: { maxSeverity: 1, duration: 3600 },
        quarantine: { maxSeverity: 2, count: 3, windowMinutes: 10 },
        notify: { url: 'https://parent.example/hook?token=x', maxSeverity: 1, minInterval: 300 },
      }),
    ).toEqual([]);
    expect(checkAlertActions(DEFAULT_ALERT_ACTIONS)).toEqual([]);
  });

  it('has valid actions for every built-in profile', () => {
    for (const p of BUILTIN_PROFILES) {
      expect(BUILTIN_ALERT_ACTIONS[p.name], p.name).toBeDefined();
      expect(checkAlertActions(BUILTIN_ALERT_ACTIONS[p.name]), p.name).toEqual([]);
    }
  });

  it.each([
    [{ block: { maxSeverity: 0, duration: 60 } }, '/block/maxSeverity'],
    [{ block: { maxSeverity: 1, duration: 0 } }, '/block/duration'],
    [{ block: { maxSeverity: 1 } }, '/block/duration'],
    [{ block: { maxSeverity: 1, duration: 1.5 } }, '/block/duration'],
    [{ quarantine: { maxSeverity: 1, count: 0, windowMinutes: 10 } }, '/quarantine/count'],
    [{ notify: { url: 'ftp://example.org/x' } }, '/notify/url'],
    [{ notify: { url: 'https://example.org/x', minInterval: -1 } }, '/notify/minInterval'],
    [{ blocks: {} }, '/blocks'],
  ])('reports %j at %s', (value, path) => {
    expect(checkAlertActions(value).map((i) => i.path)).toContain(path);
  });

  it('throws CONFIG_INVALID listing the problems', () => {
    let err: unknown;
    try {
      parseAlertActions({ block: { maxSeverity: 'high', duration: 60 } }, 'profile kid');
    } catch (e) {
      err = e;
    }
    expect(isPortcullisError(err, 'CONFIG_INVALID')).toBe(true);
    expect((err as Error).message).toMatch(/^profile kid: \/block\/maxSeverity: /);
  });
});
