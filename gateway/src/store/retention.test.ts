import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RetentionJob } from './retention.js';
import { Store } from './store.js';

describe('RetentionJob', () => {
  let t: number;
  let store: Store;
  beforeEach(() => {
    t = Date.parse('2026-01-01T00:00:00Z');
    store = Store.open({ path: ':memory:', now: () => t });
  });
  afterEach(() => store.close());

  const ask = (domain: string) => store.accessRequests.create({ vm: 'kid', domain }, 'guest:kid');

  it('deletes requests older than the setting, keeping approvals in force', () => {
    const old = ask('old.example');
    const always = ask('always.example');
    const ended = ask('ended.example');
    store.accessRequests.decide(old.id, { status: 'denied', decidedBy: 'api' });
    store.accessRequests.decide(always.id, { status: 'approved', decidedBy: 'api' });
    store.accessRequests.decide(ended.id, {
      status: 'approved',
      decidedBy: 'api',
      until: '2026-01-02T00:00:00Z',
    });
    t += 31 * 86_400_000;
    const fresh = ask('fresh.example');
    const job = new RetentionJob({ store, now: () => t, settings: { accessRequestDays: 30 } });
    expect(job.run().accessRequests).toBe(2);
    expect(store.accessRequests.list().map((r) => r.id)).toEqual([fresh.id, always.id]);
    expect(store.audit.list({ action: 'retention.trim' }).items[0]).toMatchObject({
      after: { accessRequests: 2 },
    });
  });

  it('keeps at most the configured number of requests and audit entries, newest', () => {
    for (let i = 0; i < 10; i++) ask(`n${i}.example`);
    const job = new RetentionJob({ store, now: () => t, settings: { accessRequestMax: 4, auditMax: 5 } });
    expect(job.run()).toEqual({ accessRequests: 6, audit: 6 });
    expect(store.accessRequests.list().map((r) => r.domain)).toEqual([
      'n9.example',
      'n8.example',
      'n7.example',
      'n6.example',
    ]);
    expect(store.audit.count()).toBe(5);
    expect(store.audit.list({ limit: 1 }).items[0]).toMatchObject({ action: 'retention.trim' });
  });

  it('deletes audit entries older than the setting, and records nothing when nothing was deleted', () => {
    ask('a.example');
    const job = new RetentionJob({ store, now: () => t, settings: { auditDays: 7 } });
    expect(job.run()).toEqual({ accessRequests: 0, audit: 0 });
    expect(store.audit.count()).toBe(1);
    t += 8 * 86_400_000;
    expect(job.run().audit).toBe(1);
    expect(store.audit.list().items.map((e) => e.action)).toEqual(['retention.trim']);
  });
});
