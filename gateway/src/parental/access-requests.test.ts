import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Store } from '../store/store.js';
import { AccessRequestIntake, PageTokens, requestedDomain } from './access-requests.js';

async function outcomes(registry: Registry): Promise<Record<string, number>> {
  const m = await registry.getSingleMetric('portcullis_access_requests_total')!.get();
  return Object.fromEntries(m.values.map((v) => [String(v.labels.result), v.value]));
}

describe('requestedDomain', () => {
  it('takes a domain, lower case, without the trailing dot', () => {
    expect(requestedDomain({ domain: 'Games.Example.' })).toBe('games.example');
    expect(requestedDomain({ url: 'https://Videos.Example/watch?v=1' })).toBe('videos.example');
  });

  it.each([
    [{ domain: '10.0.0.1' }, '/body/domain'],
    [{ domain: '*.example.com' }, '/body/domain'],
    [{ domain: 'localhost' }, '/body/domain'],
    [{ domain: 'a..b' }, '/body/domain'],
    [{ domain: `${'a'.repeat(64)}.example` }, '/body/domain'],
    [{ url: 'http://10.0.0.1/' }, '/body/url'],
    [{ url: 'http://[fd00::1]/' }, '/body/url'],
    [{ url: 'not a url' }, '/body/url'],
    [{}, '/body/domain'],
  ])('refuses %j', (ask, path) => {
    expect(() => requestedDomain(ask)).toThrow(expect.objectContaining({ code: 'REQUEST_INVALID', path }));
  });
});

describe('AccessRequestIntake', () => {
  let t: number;
  let store: Store;
  let registry: Registry;
  let intake: AccessRequestIntake;
  beforeEach(() => {
    t = Date.parse('2026-03-01T12:00:00Z');
    store = Store.open({ path: ':memory:', now: () => t });
    registry = new Registry();
    intake = new AccessRequestIntake({
      store,
      registry,
      now: () => t,
      limits: { maxPending: 4, perHour: 6, burst: 3 },
    });
  });
  afterEach(() => store.close());

  it('records a request once: asking again answers the pending one', () => {
    const a = intake.submit('kid', { domain: 'games.example' }, 'guest:kid');
    const b = intake.submit('kid', { domain: 'GAMES.example.' }, 'guest:kid');
    expect(a.created).toBe(true);
    expect(b).toEqual({ request: a.request, created: false });
    expect(store.accessRequests.pendingFor('kid')).toHaveLength(1);
  });

  it('limits new requests per VM to the burst, then the hourly rate; other VMs are not affected', async () => {
    for (const d of ['a', 'b', 'c']) intake.submit('kid', { domain: `${d}.example` }, 'guest:kid');
    expect(() => intake.submit('kid', { domain: 'd.example' }, 'guest:kid')).toThrow(
      expect.objectContaining({ code: 'RATE_LIMITED', status: 429 }),
    );
    expect(intake.submit('work', { domain: 'd.example' }, 'guest:work').created).toBe(true);
    t += 10 * 60_000; // 6 an hour: one more after 10 minutes
    expect(intake.submit('kid', { domain: 'd.example' }, 'guest:kid').created).toBe(true);
    expect(await outcomes(registry)).toMatchObject({ created: 5, rate_limited: 1 });
  });

  it('caps the pending requests of a VM', async () => {
    for (const d of ['a', 'b', 'c']) intake.submit('kid', { domain: `${d}.example` }, 'guest:kid');
    t += 3_600_000;
    intake.submit('kid', { domain: 'd.example' }, 'guest:kid');
    expect(() => intake.submit('kid', { domain: 'e.example' }, 'guest:kid')).toThrow(
      expect.objectContaining({ code: 'CONFLICT', path: '/body/vm' }),
    );
    expect(await outcomes(registry)).toMatchObject({ created: 4, pending_cap: 1 });
  });

  it('audits a VM that hits a limit once per 10 minutes, and counts every rejection', async () => {
    for (let i = 0; i < 50; i++) {
      try {
        intake.submit('kid', { domain: `n${i}.example` }, 'guest:kid');
      } catch {
        // expected beyond the burst
      }
    }
    const limited = () => store.audit.list({ action: 'access-request.limited' }).items;
    expect(limited()).toHaveLength(1);
    expect(limited()[0]).toMatchObject({ actor: 'guest:kid', target: 'vm/kid' });
    expect(await outcomes(registry)).toMatchObject({ created: 3, rate_limited: 47 });
    t += 11 * 60_000;
    intake.reject('kid', 'rate_limited');
    expect(limited()).toHaveLength(2);
  });

  it('counts invalid requests', async () => {
    expect(() => intake.submit('kid', { domain: '192.168.1.1' }, 'guest:kid')).toThrow(/not a domain/);
    expect(await outcomes(registry)).toMatchObject({ invalid: 1 });
  });
});

describe('PageTokens', () => {
  it('accepts a token only for the VM and domain of its page, within its age', () => {
    let t = 1_800_000_000_000;
    const tokens = new PageTokens({ now: () => t, maxAgeMs: 60_000 });
    const token = tokens.issue('kid', 'games.example');
    expect(tokens.check(token, 'kid', 'games.example')).toBe(true);
    expect(tokens.check(token, 'work', 'games.example')).toBe(false);
    expect(tokens.check(token, 'kid', 'other.example')).toBe(false);
    expect(tokens.check(undefined, 'kid', 'games.example')).toBe(false);
    expect(tokens.check(`${token}x`, 'kid', 'games.example')).toBe(false);
    expect(
      tokens.check(new PageTokens({ now: () => t }).issue('kid', 'games.example'), 'kid', 'games.example'),
    ).toBe(false);
    t += 61_000;
    expect(tokens.check(token, 'kid', 'games.example')).toBe(false);
  });
});
