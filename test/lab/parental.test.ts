import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dhcp, REPO, setInternetHosts } from '../../appliance/lab/builder.js';
import { isPortcullisError } from '../../gateway/src/errors.js';
import { DnsFilter } from '../../gateway/src/dns/server.js';
import {
  api,
  curl,
  dig,
  down,
  guest,
  inNs,
  internetRequests,
  mustNs,
  sleep,
  STATE_DIR,
  topology,
  up,
  type DigResult,
} from './harness.js';

/**
 * Every parental control, end to end in the lab: the DNS filter (categories, the
 * block page and its "ask a parent" button, approvals, SafeSearch, services, per-
 * service schedules), the kernel (schedules, pause, slow-down, daily budgets) and the
 * unassigned-device pool; and the DNS filter's list loading with bad files.
 */
const web = topology.internet.web;
const spare = topology.internet.hosts['spare.test']!;
const gateway = topology.lan.gateway;
const hosts = topology.internet.hosts;

/** Names of the kid profile's blocked categories (rules/lists/categories). */
const ADULT = 'pornhub.com';
const APPROVE = 'bet365.com'; // gambling
const DENY = 'williamhill.com'; // gambling
const EVERY_DAY = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];

const addresses = (r: DigResult): string[] => r.answers.filter((a) => a.type === 'A').map((a) => a.data);
const reaches = async (ns: string, url: string): Promise<boolean> => (await curl(ns, url, [], 2)).ok;

/** A custom profile: open internet, no IPS, plus `extra`. */
async function addProfile(name: string, extra: Record<string, unknown>): Promise<void> {
  const r = await api('POST', '/api/v1/profiles', {
    name,
    internet: 'open',
    rules: [],
    reach: [],
    ips: { mode: 'off', failure: 'fail-open' },
    ...extra,
  });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
}

async function patchVm(name: string, patch: Record<string, unknown>): Promise<void> {
  const r = await api('PATCH', `/api/v1/vms/${name}`, patch);
  expect(r.status, JSON.stringify(r.body)).toBe(200);
}

/** The chain of a VM in the kernel, listed with TZ=UTC (nft prints times in its own zone). */
function vmChain(vm: string): Promise<string> {
  return mustNs('secvm', [
    'env',
    'TZ=UTC',
    'nft',
    'list',
    'chain',
    'inet',
    'portcullis',
    `vm_${vm.replace(/-/g, '_')}`,
  ]);
}

/** The UTC form nft prints a `meta time` in. */
const nftTime = (iso: string): string => new Date(iso).toISOString().slice(0, 19).replace('T', ' ');

/** A fixed-offset time zone in which the local hour is `hour` now (minutes are UTC's). */
function zoneWhereHourIs(hour: number): string {
  const x = (((hour - new Date().getUTCHours()) % 24) + 24) % 24;
  if (x === 0) return 'Etc/UTC';
  return x <= 12 ? `Etc/GMT-${x}` : `Etc/GMT+${24 - x}`;
}

/** The local weekday (mon … sun) now in `tz`, and `shift` days from it. */
function weekday(tz: string, shift = 0): string {
  const name = new Intl.DateTimeFormat('en-US', { timeZone: tz, weekday: 'short' })
    .format(new Date())
    .toLowerCase()
    .slice(0, 3);
  return EVERY_DAY[(EVERY_DAY.indexOf(name) + shift + 7) % 7]!;
}

/** Bytes per second of one download from a guest. */
async function speed(ns: string, bytes: number, host: string = web): Promise<number> {
  const out = await mustNs(
    ns,
    [
      'curl',
      '-sS',
      '-o',
      '/dev/null',
      '-w',
      '%{size_download} %{speed_download}',
      '--max-time',
      '60',
      `http://${host}/bytes?n=${bytes}`,
    ],
    70_000,
  );
  const [size, bps] = out.trim().split(' ').map(Number);
  expect(size).toBe(bytes);
  return bps!;
}

/** The listing of a set in secvm, once it holds `address` (learning is asynchronous) or after 2 s. */
async function setOnceHolding(set: string, address: string): Promise<string> {
  let listing = '';
  for (let i = 0; i < 20 && !listing.includes(address); i++) {
    listing = await mustNs('secvm', ['nft', 'list', 'set', 'inet', 'portcullis', set]);
    if (!listing.includes(address)) await sleep(100);
  }
  return listing;
}

/** The CSRF token of the block page a guest sees for a blocked name (the form carries it). */
async function pageToken(ns: string, name: string): Promise<string> {
  const page = await curl(ns, `http://${name}/`, [], 3);
  const token = /name="token" value="([^"]+)"/.exec(page.body)?.[1];
  expect(token).toBeDefined();
  return token!;
}

/** Load the block page, then POST its "ask a parent" form from a guest, for a blocked name. */
async function ask(ns: string, name: string, reason: string): Promise<number> {
  const token = await pageToken(ns, name);
  const r = await curl(
    ns,
    `http://${name}/.portcullis/ask`,
    [
      '-X',
      'POST',
      '--data-urlencode',
      `domain=${name}`,
      '--data-urlencode',
      `url=http://${name}/`,
      '--data-urlencode',
      `reason=${reason}`,
      '--data-urlencode',
      `token=${token}`,
      '-w',
      '\n%{http_code}',
    ],
    3,
  );
  expect(r.ok).toBe(true);
  expect(Number(r.body.slice(r.body.lastIndexOf('\n') + 1))).toBe(201);
  expect(r.body).toContain('Your request was sent');
  const id = /request #(\d+)/.exec(r.body)?.[1];
  expect(id).toBeDefined();
  return Number(id);
}

interface AccessRequest {
  id: number;
  vm: string;
  domain: string;
  status: string;
  reason?: string;
  until?: string;
  ruleId?: string;
}

interface Budget {
  key: string;
  usedSeconds: number;
  extraMinutes: number;
  dailyMinutes: number;
  blockedUntil?: string;
}

beforeAll(async () => {
  await up();
  // the lab's public resolver also knows the blocked names, so that an approved
  // name (or a guest without the filter) really loads a site
  setInternetHosts({ ...hosts, [ADULT]: spare, [APPROVE]: spare, [DENY]: spare }, STATE_DIR);
  await sleep(300);
});

afterAll(async () => {
  await down();
});

describe('the DNS filter and the block page', () => {
  it("blocks the kid profile's categories with the block page, naming the site and the category", async () => {
    for (const [name, category] of [
      [ADULT, 'adult'],
      [`www.${ADULT}`, 'adult'],
      [APPROVE, 'gambling'],
    ] as const) {
      expect(addresses(await dig('kid', name)), name).toEqual([gateway]);
      const page = await curl('kid', `http://${name}/`, ['-w', '\n%{http_code}'], 3);
      expect(page.body.endsWith('\n403'), name).toBe(true);
      expect(page.body).toContain(`<strong>${name}</strong> is blocked`);
      expect(page.body).toContain(`&#34;${category}&#34; category`);
    }
    // browse (no categories) gets the site
    expect(addresses(await dig('browse', APPROVE))).toEqual([spare]);
    expect((JSON.parse((await curl('browse', `http://${APPROVE}/`)).body) as { host: string }).host).toBe(
      APPROVE,
    );
  });

  it("keeps kid's query log (asked, answered, blocked and why) and explains a name on request", async () => {
    const allowed = 'example.test';
    await dig('kid', allowed);
    await dig('kid', ADULT);
    interface Entry {
      name: string;
      type: string;
      action: string;
      reason?: { kind: string; list?: string };
      answers: string[];
      cached: boolean;
    }
    const log = await api<{ vm: string; entries: Entry[] }>('GET', '/api/v1/vms/kid/queries?limit=50');
    expect(log.status, JSON.stringify(log.body)).toBe(200);
    const blockedAt = log.body.entries.findIndex((e) => e.name === ADULT);
    const allowedAt = log.body.entries.findIndex((e) => e.name === allowed);
    // newest first
    expect(blockedAt).toBeGreaterThanOrEqual(0);
    expect(allowedAt).toBeGreaterThan(blockedAt);
    expect(log.body.entries[blockedAt]).toMatchObject({
      type: 'A',
      action: 'block',
      reason: { kind: 'category', list: 'adult' },
      answers: [gateway],
    });
    expect(log.body.entries[allowedAt]).toMatchObject({ type: 'A', action: 'allow', answers: [web] });
    // another VM's log holds none of it
    const other = await api<{ entries: Entry[] }>('GET', '/api/v1/vms/browse/queries');
    expect(other.body.entries.some((e) => e.name === ADULT)).toBe(false);
    const check = await api('GET', `/api/v1/vms/kid/dns-check?name=www.${ADULT}`);
    expect(check.body).toMatchObject({
      action: 'block',
      reason: { kind: 'category', list: 'adult', entry: ADULT },
    });
    expect((await api('GET', `/api/v1/vms/browse/dns-check?name=www.${ADULT}`)).body).toMatchObject({
      action: 'allow',
    });
  });

  it('"ask a parent" records an access request; approval for some minutes makes the name resolve and load at once', async () => {
    const id = await ask('kid', APPROVE, 'homework about odds');
    const pending = await api<AccessRequest[]>('GET', '/api/v1/access-requests?status=pending');
    expect(pending.status).toBe(200);
    expect(pending.body.find((r) => r.id === id)).toMatchObject({
      vm: 'kid',
      domain: APPROVE,
      status: 'pending',
      reason: 'homework about odds',
    });
    expect(addresses(await dig('kid', APPROVE))).toEqual([gateway]);

    const before = Date.now();
    const approved = await api<AccessRequest>('POST', `/api/v1/access-requests/${id}/approve`, {
      minutes: 10,
    });
    expect(approved.status, JSON.stringify(approved.body)).toBe(200);
    expect(approved.body.status).toBe('approved');
    const until = Date.parse(approved.body.until!);
    expect(until).toBeGreaterThanOrEqual(before + 10 * 60_000 - 5000);
    expect(until).toBeLessThanOrEqual(Date.now() + 10 * 60_000 + 5000);
    try {
      // at once: no waiting for a cache or a refresh
      expect(addresses(await dig('kid', APPROVE))).toEqual([spare]);
      const page = await curl('kid', `http://${APPROVE}/`, [], 3);
      // (kid's profile queues to the IPS: an accept rule's flow goes through Suricata from its first packet)
      expect(page.ok).toBe(true);
      expect((JSON.parse(page.body) as { host: string }).host).toBe(APPROVE);
      // the approval is a rule on the VM that ends with it; the rest of the category stays blocked
      const rules = await api<
        Array<{ id: string; action: string; to: { domain?: string }; expires?: string }>
      >('GET', '/api/v1/vms/kid/rules');
      expect(rules.body.find((r) => r.id === approved.body.ruleId)).toMatchObject({
        action: 'accept',
        to: { domain: APPROVE },
        expires: approved.body.until,
      });
      expect(addresses(await dig('kid', DENY))).toEqual([gateway]);
    } finally {
      expect((await api('DELETE', `/api/v1/vms/kid/rules/${approved.body.ruleId}`)).status).toBe(204);
    }
    // revoked: blocked again
    expect(addresses(await dig('kid', APPROVE))).toEqual([gateway]);
  });

  it('a denied request leaves the name blocked', async () => {
    const id = await ask('kid', DENY, 'please');
    const denied = await api<AccessRequest>('POST', `/api/v1/access-requests/${id}/deny`, {
      reason: 'not for kids',
    });
    expect(denied.status).toBe(200);
    expect(denied.body.status).toBe('denied');
    expect(addresses(await dig('kid', DENY))).toEqual([gateway]);
    expect((await curl('kid', `http://${DENY}/`, [], 3)).body).toContain(
      `<strong>${DENY}</strong> is blocked`,
    );
    const list = await api<AccessRequest[]>('GET', '/api/v1/access-requests?vm=kid&status=denied');
    expect(list.body.map((r) => r.id)).toContain(id);
    // a decided request cannot be approved afterwards
    expect((await api('POST', `/api/v1/access-requests/${id}/approve`, { minutes: 5 })).status).toBe(409);
  });

  it('SafeSearch: Google, YouTube and Bing are answered with their safe endpoints, which see the original Host', async () => {
    const cases = [
      ['www.google.com', 'forcesafesearch.google.com'],
      ['www.youtube.com', 'restrict.youtube.com'],
      ['www.bing.com', 'strict.bing.com'],
    ] as const;
    for (const [name, safe] of cases) {
      const r = await dig('kid', name);
      expect(
        r.answers.find((a) => a.type === 'CNAME'),
        name,
      ).toMatchObject({ name, data: safe });
      expect(addresses(r), name).toEqual([hosts[safe]]);
      const marker = `/search?q=ss-${Date.now()}-${name}`;
      const page = await curl('kid', `http://${name}${marker}`, [], 3);
      expect(page.ok, name).toBe(true);
      const body = JSON.parse(page.body) as { server: string; host: string };
      expect(body.server).toBe(hosts[safe]);
      expect(body.host).toBe(name);
      expect(internetRequests().some((q) => q.host === name && q.path === marker)).toBe(true);
      // browse (no SafeSearch) gets the name's own address
      expect(addresses(await dig('browse', name)), name).toEqual([hosts[name]]);
    }
  });

  it('service blocking: a custom profile with dns.services [youtube] blocks every YouTube name, nothing else', async () => {
    await addProfile('no-youtube', { dns: { services: ['youtube'] } });
    try {
      await patchVm('browse', { profile: 'no-youtube' });
      for (const name of [
        'www.youtube.com',
        'm.youtube.com',
        'youtu.be',
        'i.ytimg.com',
        'rr1.googlevideo.com',
      ]) {
        expect(addresses(await dig('browse', name)), name).toEqual([gateway]);
      }
      const page = await curl('browse', 'http://www.youtube.com/', [], 3);
      expect(page.body).toContain('<strong>www.youtube.com</strong> is blocked');
      expect(page.body).toContain('youtube is blocked');
      expect(addresses(await dig('browse', 'www.google.com'))).toEqual([hosts['www.google.com']]);
      expect(addresses(await dig('work', 'www.youtube.com'))).toEqual([hosts['www.youtube.com']]);
    } finally {
      await patchVm('browse', { profile: 'internet-only' });
      await api('DELETE', '/api/v1/profiles/no-youtube');
    }
    expect(addresses(await dig('browse', 'www.youtube.com'))).toEqual([hosts['www.youtube.com']]);
  });
});

describe('schedules', () => {
  it('"YouTube only 17:00–19:00": outside the window YouTube names are blocked in DNS and learned YouTube addresses are rejected by the kernel', async () => {
    const learned = hosts['restrict.youtube.com']!; // kid's SafeSearch answers www.youtube.com with it
    const schedule = (timezone: string): Record<string, unknown> => ({
      name: 'youtube-evenings',
      vms: ['kid'],
      timezone,
      // denied from 19:00 to 17:00 the next day: a window that crosses midnight
      windows: [{ days: EVERY_DAY, start: '19:00', end: '17:00' }],
      services: ['youtube'],
      mode: 'deny',
    });
    // a zone where it is 17:xx now: inside the allowed hours (for the next hour too)
    const created = await api('POST', '/api/v1/schedules', schedule(zoneWhereHourIs(17)));
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    try {
      const chain = await vmChain('kid');
      expect(chain).toMatch(
        /ip daddr @svc4_kid_youtube meta day \{[^}]+\} meta hour "[\d:]+"-"[\d:]+" counter name "vmdrop_schedule_kid" reject/,
      );
      expect(addresses(await dig('kid', 'www.youtube.com'))).toEqual([learned]);
      // the answer's addresses are learned into the VM's youtube set
      expect(await setOnceHolding('svc4_kid_youtube', learned)).toContain(learned);
      expect(await reaches('kid', `http://${learned}/`)).toBe(true);

      // now in a zone where it is 22:xx: outside the allowed hours
      const moved = await api('PUT', '/api/v1/schedules/youtube-evenings', schedule(zoneWhereHourIs(22)));
      expect(moved.status, JSON.stringify(moved.body)).toBe(200);
      expect(addresses(await dig('kid', 'www.youtube.com'))).toEqual([gateway]);
      expect(addresses(await dig('kid', 'm.youtube.com'))).toEqual([gateway]);
      // the address the app may still hold from before: rejected (refused at once)
      const held = await curl('kid', `http://${learned}/`, [], 3);
      expect(held.ok).toBe(false);
      expect(held.code).toBe(7);
      // the rest of kid's internet, and youtube for other VMs, are untouched
      expect(addresses(await dig('kid', 'example.test'))).toEqual([web]);
      expect(await reaches('kid', `http://${web}/`)).toBe(true);
      expect(await reaches('browse', `http://${learned}/`)).toBe(true);
      // a per-service schedule does not switch the whole VM off
      const state = await api<{ internet: string; schedules: Array<{ name: string; active: boolean }> }>(
        'GET',
        '/api/v1/vms/kid/state',
      );
      expect(state.body.schedules).toEqual([{ name: 'youtube-evenings', mode: 'deny', active: true }]);
      expect(state.body.internet).toBe('open');
    } finally {
      await api('DELETE', '/api/v1/schedules/youtube-evenings');
    }
    expect(addresses(await dig('kid', 'www.youtube.com'))).toEqual([learned]);
  });

  it('several windows a day and a window crossing midnight: the API accepts them, the kernel enforces each', async () => {
    const schedule = (timezone: string, nightStarts: string): Record<string, unknown> => ({
      name: 'work-hours',
      vms: ['work'],
      timezone,
      windows: [
        { days: [nightStarts], start: '22:00', end: '06:00' },
        { days: EVERY_DAY, start: '11:00', end: '14:00' },
      ],
      mode: 'deny',
    });
    // [local hour now, the night window starts on (days from today), blocked?]
    const cases: Array<[number, number, boolean, string]> = [
      [23, 0, true, 'in the night window, before midnight'],
      [3, -1, true, 'in the night window that started yesterday, after midnight'],
      [3, 0, false, 'before the night window that starts tonight'],
      [12, 0, true, 'in the midday window'],
      [9, 0, false, 'between the windows'],
    ];
    let created = false;
    try {
      for (const [hour, shift, blocked, what] of cases) {
        const tz = zoneWhereHourIs(hour);
        const body = schedule(tz, weekday(tz, shift));
        const r = created
          ? await api('PUT', '/api/v1/schedules/work-hours', body)
          : await api('POST', '/api/v1/schedules', body);
        expect(r.status, JSON.stringify(r.body)).toBe(created ? 200 : 201);
        created = true;
        const rules = (await vmChain('work'))
          .split('\n')
          .filter((l) =>
            /meta day .* meta hour "[\d:]+"-"[\d:]+" counter name "vmdrop_schedule_work" drop/.test(l),
          );
        // 22:00–06:00 and 11:00–14:00 (more where one crosses UTC midnight)
        expect(rules.length, `${what}: ${rules.join('\n')}`).toBeGreaterThanOrEqual(2);
        expect(await reaches('work', `http://${web}/`), `${what} (${tz})`).toBe(!blocked);
        expect(addresses(await dig('work', 'example.test')), what).toEqual([blocked ? gateway : web]);
        const state = await api<{ schedules: Array<{ active: boolean }> }>('GET', '/api/v1/vms/work/state');
        expect(state.body.schedules[0]?.active, what).toBe(blocked);
      }
    } finally {
      await api('DELETE', '/api/v1/schedules/work-hours');
    }
    expect(await reaches('work', `http://${web}/`)).toBe(true);
  });
});

describe('pause, slow-down, time budgets', () => {
  it('pause now: cuts kid off at once (open connections too), DNS answers the block page; resume restores it', async () => {
    // an open connection that sends one line now and one in 3 s (the sink logs it after 4 s of silence)
    const mark = `pause-${process.pid}-${Date.now()}`;
    const open = inNs(
      'kid',
      [
        'bash',
        '-c',
        `(echo ${mark}-before; sleep 3; echo ${mark}-after; sleep 1) | timeout 8 nc ${web} 9000`,
      ],
      15_000,
    );
    await sleep(1000);
    const paused = await api<{ vm: string; pause: { since: string; until: string; reason?: string } }>(
      'POST',
      '/api/v1/vms/kid/pause',
      { minutes: 5, reason: 'dinner' },
    );
    expect(paused.status, JSON.stringify(paused.body)).toBe(200);
    try {
      expect(Date.parse(paused.body.pause.until) - Date.parse(paused.body.pause.since)).toBe(5 * 60_000);
      expect(await reaches('kid', `http://${web}/`)).toBe(false);
      await open;
      let got: string | undefined;
      for (let i = 0; i < 40 && got === undefined; i++) {
        got = internetRequests().find((q) => q.scheme === 'tcp' && q.body?.includes(`${mark}-before`))?.body;
        if (got === undefined) await sleep(250);
      }
      expect(got).toContain(`${mark}-before`);
      expect(got).not.toContain(`${mark}-after`);
      expect(addresses(await dig('kid', 'example.test'))).toEqual([gateway]);
      expect((await curl('kid', 'http://example.test/', [], 3)).body).toContain(
        'a parent paused the internet until',
      );
      expect(await vmChain('kid')).toContain(
        `meta time < "${nftTime(paused.body.pause.until)}" counter name "vmdrop_pause_kid" drop`,
      );
      expect(await reaches('browse', `http://${web}/`)).toBe(true);
    } finally {
      expect((await api('DELETE', '/api/v1/vms/kid/pause')).status).toBe(200);
    }
    expect(await reaches('kid', `http://${web}/`)).toBe(true);
    expect(addresses(await dig('kid', 'example.test'))).toEqual([web]);
    expect(await vmChain('kid')).not.toContain('meta time <');
  });

  it('a pause for some minutes ends by the kernel clock: the rule drops only until its end', async () => {
    const r = await api<{ pause: { since: string; until: string } }>('POST', '/api/v1/vms/kid/pause', {
      minutes: 1,
    });
    expect(r.status).toBe(200);
    try {
      expect(Date.parse(r.body.pause.until) - Date.parse(r.body.pause.since)).toBe(60_000);
      expect(await vmChain('kid')).toContain(
        `meta time < "${nftTime(r.body.pause.until)}" counter name "vmdrop_pause_kid" drop`,
      );
      expect(await reaches('kid', `http://${web}/`)).toBe(false);
      // the API rejects a pause of no length
      expect((await api('POST', '/api/v1/vms/kid/pause', { minutes: 0 })).status).toBe(400);
    } finally {
      await api('DELETE', '/api/v1/vms/kid/pause');
    }
    expect(await reaches('kid', `http://${web}/`)).toBe(true);
  });

  it('slow down: parental.slowKbytes 100 makes a download several times slower', async () => {
    const fast = await speed('browse', 2_000_000);
    await addProfile('slow', { parental: { slowKbytes: 100 } });
    try {
      await patchVm('browse', { profile: 'slow' });
      expect(await mustNs('secvm', ['nft', 'list', 'chain', 'inet', 'portcullis', 'to_guests'])).toContain(
        `ip daddr ${guest('browse').ipv4} limit rate over 100 kbytes/second`,
      );
      const slow = await speed('browse', 600_000);
      expect(slow, `slowed ${Math.round(slow)} B/s vs ${Math.round(fast)} B/s`).toBeLessThan(fast / 3);
      // the rest of the lab is not slowed
      expect(await speed('work', 2_000_000)).toBeGreaterThan(slow * 3);
    } finally {
      await patchVm('browse', { profile: 'internet-only' });
      await api('DELETE', '/api/v1/profiles/slow');
    }
  }, 120_000);

  it('slow down one service: parental.slowServices youtube 100 slows YouTube downloads only', async () => {
    const youtube = hosts['www.youtube.com']!;
    await addProfile('slow-youtube', { parental: { slowServices: [{ service: 'youtube', kbytes: 100 }] } });
    try {
      await patchVm('browse', { profile: 'slow-youtube' });
      const fast = await speed('browse', 2_000_000, youtube);
      // the name resolves through the filter, which puts its address in browse's youtube set
      expect(addresses(await dig('browse', 'www.youtube.com'))).toEqual([youtube]);
      expect(await setOnceHolding('svc4_browse_youtube', youtube)).toContain(youtube);
      const slow = await speed('browse', 600_000, 'www.youtube.com');
      expect(slow, `YouTube slowed to ${Math.round(slow)} B/s vs ${Math.round(fast)} B/s`).toBeLessThan(
        fast / 3,
      );
      // other sites are not slowed for browse
      expect(await speed('browse', 2_000_000)).toBeGreaterThan(slow * 3);
    } finally {
      await patchVm('browse', { profile: 'internet-only' });
      await api('DELETE', '/api/v1/profiles/slow-youtube');
    }
  }, 120_000);

  it('daily time budget shared by two VMs of one owner: spent together, blocks both; a grant unblocks at once', async () => {
    // active use: the budget counts what the VM sends (a download's ACKs alone can stay under
    // the idle threshold), so each round uploads 250 kB at 50 kB/s
    const loop = (ns: string, seconds: number, stopWhenCut: boolean): Promise<unknown> =>
      inNs(
        ns,
        [
          'bash',
          '-c',
          `end=$((SECONDS+${seconds})); while [ $SECONDS -lt $end ]; do head -c 250000 /dev/zero | curl -sf -o /dev/null --max-time 6 --limit-rate 50k --data-binary @- http://${web}/upload ${stopWhenCut ? '|| break' : ''}; done`,
        ],
        (seconds + 15) * 1000,
      );
    const budget = async (vm: string): Promise<Budget> => {
      const r = await api<Budget>('GET', `/api/v1/vms/${vm}/budget`);
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      return r.body;
    };
    await addProfile('one-minute', { parental: { dailyMinutes: 1 } });
    try {
      expect((await api('GET', '/api/v1/vms/kid/budget')).status).toBe(404);
      await patchVm('kid', { profile: 'one-minute', owner: 'sam' });
      await patchVm('browse', { profile: 'one-minute', owner: 'sam' });
      const start = await budget('kid');
      expect(start).toMatchObject({ key: 'sam', dailyMinutes: 1, extraMinutes: 0 });
      expect(start.blockedUntil).toBeUndefined();

      // about half the minute on kid
      await loop('kid', 35, false);
      await sleep(6000);
      const half = await budget('kid');
      expect(half.usedSeconds).toBeGreaterThan(15);
      expect(half.usedSeconds).toBeLessThan(60);
      expect(half.blockedUntil).toBeUndefined();
      expect(await budget('browse')).toEqual(half);

      // the rest on browse, until the gate closes
      await loop('browse', 60, true);
      let spent = await budget('browse');
      for (let i = 0; i < 30 && !spent.blockedUntil; i++) {
        await sleep(1000);
        spent = await budget('browse');
      }
      expect(spent.usedSeconds).toBeGreaterThanOrEqual(60);
      const now = new Date();
      expect(spent.blockedUntil).toBe(
        new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1)).toISOString(),
      );
      expect(await budget('kid')).toEqual(spent);
      // both are blocked, kid although it used only part of the minute itself
      expect(await reaches('kid', `http://${web}/`)).toBe(false);
      expect(await reaches('browse', `http://${web}/`)).toBe(false);
      expect(await vmChain('kid')).toContain(
        `meta time < "${nftTime(spent.blockedUntil!)}" counter name "vmdrop_budget_kid" drop`,
      );
      expect(await reaches('work', `http://${web}/`)).toBe(true);
      // DNS follows (the service refreshes its DNS clients every 15 s): the block page
      let answer: string[] = [];
      for (let i = 0; i < 40 && answer[0] !== gateway; i++) {
        answer = addresses(await dig('kid', 'example.test'));
        if (answer[0] !== gateway) await sleep(500);
      }
      expect(answer).toEqual([gateway]);
      // the block page says why
      expect((await curl('kid', 'http://example.test/', [], 3)).body).toContain(
        'internet time is used up; it comes back at 00:00',
      );

      const granted = await api<Budget>('POST', '/api/v1/vms/kid/budget/grant', { minutes: 5 });
      expect(granted.status, JSON.stringify(granted.body)).toBe(200);
      expect(granted.body.extraMinutes).toBe(5);
      expect(granted.body.blockedUntil).toBeUndefined();
      // at once, for both VMs of the owner
      expect(await reaches('kid', `http://${web}/`)).toBe(true);
      expect(await reaches('browse', `http://${web}/`)).toBe(true);
      expect(await vmChain('kid')).not.toContain('meta time <');
      // DNS too: the budget's change refreshes the DNS clients
      expect(addresses(await dig('kid', 'example.test'))).toEqual([web]);
    } finally {
      await patchVm('kid', { profile: 'kid', owner: null });
      await patchVm('browse', { profile: 'internet-only', owner: null });
      await api('DELETE', '/api/v1/profiles/one-minute');
    }
  }, 200_000);
});

describe('unknown devices', () => {
  it('an unknown MAC gets a lease from the unassigned pool and only the block page; registering it lets it out', async () => {
    const mac = '02:11:22:33:44:55';
    let registered = false;
    try {
      await mustNs('browse', ['ip', 'link', 'set', 'eth0', 'address', mac]);
      await mustNs('browse', ['ip', '-4', 'addr', 'flush', 'dev', 'eth0']);
      await inNs('browse', ['ip', 'neigh', 'flush', 'dev', 'eth0']);
      await mustNs(
        'browse',
        [
          'busybox',
          'udhcpc',
          '-i',
          'eth0',
          '-n',
          '-q',
          '-f',
          '-t',
          '5',
          '-T',
          '1',
          '-s',
          join(REPO, 'appliance', 'lab', 'udhcpc.sh'),
        ],
        30_000,
      );
      const m = /inet (10\.20\.0\.(\d+))\//.exec(
        await mustNs('browse', ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']),
      );
      expect(m).not.toBeNull();
      const leased = m![1]!;
      expect(Number(m![2])).toBeGreaterThanOrEqual(200);
      expect(Number(m![2])).toBeLessThanOrEqual(249);
      expect(await reaches('browse', `http://${web}/`)).toBe(false);
      expect(addresses(await dig('browse', 'example.test'))).toEqual([gateway]);
      expect((await curl('browse', 'http://example.test/', [], 3)).body).toContain('not registered');
      const waiting = await api<Array<{ mac: string; ipv4: string }>>('GET', '/api/v1/devices/unassigned');
      expect(waiting.body).toContainEqual(expect.objectContaining({ mac, ipv4: leased }));

      const added = await api('POST', '/api/v1/vms', {
        name: 'new-device',
        mac,
        ipv4: leased,
        profile: 'internet-only',
      });
      expect(added.status, JSON.stringify(added.body)).toBe(201);
      registered = true;
      expect(await reaches('browse', `http://${web}/`)).toBe(true);
      expect(addresses(await dig('browse', 'example.test'))).toEqual([web]);
      expect(
        (await api<Array<{ mac: string }>>('GET', '/api/v1/devices/unassigned')).body.map((d) => d.mac),
      ).not.toContain(mac);
    } finally {
      if (registered) await api('DELETE', '/api/v1/vms/new-device');
      await mustNs('browse', ['ip', 'link', 'set', 'eth0', 'address', guest('browse').mac]);
      await inNs('browse', ['ip', 'neigh', 'flush', 'dev', 'eth0']);
      await inNs('browse', ['ip', '-4', 'addr', 'flush', 'dev', 'eth0']);
      dhcp('browse');
    }
    expect(await reaches('browse', `http://${web}/`)).toBe(true);
  });
});

describe('list files (no upload API: the DNS filter loading real files)', () => {
  it('rejects a wrongly formatted, a huge-line and a binary list with a clear error, and keeps the lists in force', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-lists-'));
    const file = (name: string, content: string | Buffer): string => {
      const path = join(dir, name);
      writeFileSync(path, content);
      return path;
    };
    const good = file('adult.txt', '# a good list\nlisted-before.example\n');
    const policy = { client: 'lab-kid', categories: ['adult'] };
    const filter = new DnsFilter({
      listen: [{ address: '127.0.0.1', port: 0 }],
      upstreams: [{ address: '127.0.0.1', port: 9 }],
      upstreamTimeoutMs: 300,
      identify: () => policy,
      blockPage: { v4: gateway },
      lists: [{ name: 'adult', kind: 'category', files: [good] }],
    });
    await filter.start();
    const port = filter.addresses()[0]!.port;
    // asynchronously: the filter answers from this very process
    const query = async (name: string): Promise<string> =>
      (
        await promisify(execFile)(
          'dig',
          ['+short', '+time=1', '+tries=1', '-p', String(port), '@127.0.0.1', name],
          { encoding: 'utf8' },
        )
      ).stdout.trim();
    try {
      expect(await query('listed-before.example')).toBe(gateway);
      const bad: Array<[string, string | Buffer, RegExp]> = [
        [
          'wrong-format.txt',
          'listed-after.example\n' + '<html><body>this is a web page, not a list</body></html>\n'.repeat(40),
          /:2: 40 of 41 entry lines are not domain names/,
        ],
        [
          'huge-line.txt',
          'listed-after.example\n' + 'a'.repeat(5000) + '.example\n',
          /:2: line is 5008 bytes long, more than the limit of 1024/,
        ],
        [
          'binary.txt',
          Buffer.concat([
            Buffer.from('listed-after.example\n'),
            Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x00, 0x00, 0xff, 0xfe]),
          ]),
          /:2: (NUL|control) byte.*this looks like a binary file/,
        ],
      ];
      for (const [name, content, message] of bad) {
        const path = file(name, content);
        const err = await filter.loadLists([{ name: 'adult', kind: 'category', files: [path] }]).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(isPortcullisError(err, 'DNS_LIST_INVALID'), `${name}: ${String(err)}`).toBe(true);
        expect((err as Error).message).toContain(path);
        expect((err as Error).message).toMatch(message);
        expect((err as Error).message).toContain('the lists in force were kept');
        // the previous list is still in force, the rejected one is not
        expect(await query('listed-before.example'), name).toBe(gateway);
        expect(filter.verdict('listed-after.example', policy).action, name).toBe('allow');
      }
      // control: a good replacement is taken
      await filter.loadLists([
        { name: 'adult', kind: 'category', files: [file('adult2.txt', 'listed-after.example\n')] },
      ]);
      expect(await query('listed-after.example')).toBe(gateway);
      expect(filter.verdict('listed-before.example', policy).action).toBe('allow');
    } finally {
      await filter.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
