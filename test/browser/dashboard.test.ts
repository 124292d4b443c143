import { join } from 'node:path';
import type { Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARTIFACTS, openChromium, type OpenChromium } from './chromium.js';
import { NEW_DEVICE, startDashboardServer, type DashboardServer } from './dashboard-server.js';

/**
 * The dashboard in a real browser (Debian's Chromium, headless) against the real API,
 * store and policy service; only the enforcer is a recorder. Chromium is installed by
 * appliance/provision.sh: without it this suite fails, it never skips.
 */
const TOKEN = 'parent-secret-0123456789';
const ADMIN = { name: 'admin', role: 'admin', password: 'the admin password' };
const SHOTS = join(ARTIFACTS, 'dashboard');

describe('dashboard', () => {
  let server: DashboardServer;
  let page: Page;
  let browser: OpenChromium | undefined;
  let pageErrors: string[] = [];
  const consoleErrors: string[] = [];
  let offsiteRequests: string[] = [];

  beforeAll(async () => {
    server = await startDashboardServer({ token: TOKEN, users: [ADMIN] });
    // the page talks to its own origin only
    browser = await openChromium({ onlyHost: '127.0.0.1', timezoneId: 'Europe/Berlin', locale: 'en-GB' });
    ({ page, pageErrors, offsite: offsiteRequests } = browser);
    page.on('console', (msg) => {
      // the browser logs every 4xx answer; the tests provoke some on purpose
      if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource'))
        consoleErrors.push(msg.text());
    });
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  /** The text of an element, whitespace collapsed. */
  async function text(locator: Locator): Promise<string> {
    return ((await locator.textContent()) ?? '').replace(/\s+/g, ' ').trim();
  }

  /** A link of the main navigation. */
  function nav(name: string | RegExp): Locator {
    return page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name });
  }

  /** The problem shown under a labelled field. */
  function fieldError(scope: Locator, label: string): Locator {
    return scope.locator('.field', { has: page.getByLabel(label, { exact: true }) }).locator('.field-error');
  }

  it('asks who you are first, and says so when the password is wrong', async () => {
    await page.goto(`${server.url}/`);
    const form = page.getByRole('form', { name: 'Log in' });
    await form.waitFor();
    expect(await page.getByRole('navigation', { name: 'Main' }).isHidden()).toBe(true);
    await form.getByLabel('User name').fill(ADMIN.name);
    await form.getByLabel('Password').fill('not the password');
    await form.getByRole('button', { name: 'Log in' }).click();
    const error = fieldError(form, 'Password');
    await error.waitFor();
    expect(await text(error)).toBe('Wrong user name or password');
    await page.screenshot({ path: `${SHOTS}-login.png`, fullPage: true });
    await form.getByLabel('Password').fill(ADMIN.password);
    await form.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
    expect(await text(page.locator('#account-name'))).toBe('admin (admin)');
  });

  it('shows every VM on the overview with what is in force now', async () => {
    await page.goto(`${server.url}/`);
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
    const kid = page.locator('article[data-vm="kid"]');
    const work = page.locator('article[data-vm="work"]');
    await kid.locator('.pill').waitFor();
    expect(await text(kid.locator('h3'))).toBe('kid');
    expect(await text(kid.locator('.pill'))).toMatch(/^(Internet on|Internet off|Only allowed sites)$/);
    expect(await text(kid)).toContain('bedtime (');
    expect(await text(work.locator('.pill'))).toBe('Internet off');
    expect(await text(work)).toContain('Quarantined since');
    expect(await text(work)).toContain('ET MALWARE beacon');
    await page.getByRole('button', { name: 'Quarantine kid' }).waitFor();
    await page.getByRole('button', { name: 'End quarantine of work' }).waitFor();
    await page.screenshot({ path: `${SHOTS}-overview.png`, fullPage: true });
  });

  it('adds a rule with the session (and its CSRF token)', async () => {
    await page.getByRole('link', { name: 'Rules and details of kid' }).click();
    await page.getByRole('heading', { level: 1, name: 'kid' }).waitFor();
    const form = page.locator('form.rule-form');
    await form.getByLabel('What to do').selectOption('reject');
    await form.getByLabel('To what').selectOption('domain');
    await form.getByLabel('Website or domain').fill('games.example');
    await form.getByLabel('Protocol').selectOption('tcp');
    await form.getByLabel('Ports (optional)').fill('443');
    await form.getByLabel('Note (optional)').fill('no games on school days');
    await form.getByRole('button', { name: 'Add rule' }).click();
    const added = page.locator('li.rule', { hasText: 'Block TCP port 443 to website games.example' });
    await added.waitFor();
    expect(await text(added)).toContain('no games on school days');
    expect(await text(page.locator('#status'))).toContain('Rule added');

    const rule = { action: 'reject', to: { domain: 'games.example' }, proto: 'tcp', ports: ['443'] };
    expect(server.policy.getVm('kid').rules).toContainEqual(expect.objectContaining(rule));
    const enforced = server.applied.at(-1)!.vms.find((v) => v.name === 'kid')!;
    expect(enforced.rules).toContainEqual(expect.objectContaining(rule));
    expect(server.store.audit.list({ limit: 1 }).items[0]).toMatchObject({
      actor: 'user:admin',
      action: 'rule.add',
    });
  });

  it('shows a bad CIDR next to its field', async () => {
    const form = page.locator('form.rule-form');
    const before = server.applied.length;
    await form.getByLabel('To what').selectOption('cidr');
    await form.getByLabel('Address or network').fill('203.0.113.1/24');
    await form.getByRole('button', { name: 'Add rule' }).click();

    const error = fieldError(form, 'Address or network');
    await error.waitFor();
    expect(await text(error)).toBe('"203.0.113.1/24" has host bits set; did you mean 203.0.113.0/24?');
    const input = form.getByLabel('Address or network');
    expect(await input.getAttribute('aria-invalid')).toBe('true');
    expect(await input.getAttribute('aria-describedby')).toContain(await error.getAttribute('id'));
    expect(await input.evaluate((el) => el === document.activeElement)).toBe(true);
    expect(await form.locator('.form-error').isHidden()).toBe(true);
    expect(await fieldError(form, 'Ports (optional)').isHidden()).toBe(true);
    expect(server.applied.length).toBe(before);
    await page.screenshot({ path: `${SHOTS}-cidr-error.png`, fullPage: true });

    // fixing it clears the problem and adds the rule (another rule to that network is
    // listed already, so wait for the new one in the policy, not for the text)
    await input.fill('203.0.113.0/24');
    await form.getByRole('button', { name: 'Add rule' }).click();
    await expect
      .poll(() => server.policy.getVm('kid').rules, { timeout: 10_000 })
      .toContainEqual(expect.objectContaining({ action: 'reject', to: { cidr: '203.0.113.0/24' } }));
    await expect
      .poll(() => page.locator('li.rule', { hasText: '203.0.113.0/24' }).count(), { timeout: 10_000 })
      .toBe(2);
  });

  it('deletes a rule after asking once more', async () => {
    const rule = page.locator('li.rule', { hasText: 'games.example' });
    await rule.getByRole('button', { name: /^Delete rule/ }).click();
    await rule.getByRole('button', { name: /^Yes, delete rule/ }).click();
    await rule.waitFor({ state: 'detached' });
    expect(
      server.policy.getVm('kid').rules?.some((r) => 'domain' in r.to && r.to.domain === 'games.example'),
    ).toBe(false);
  });

  it('quarantines a VM with a reason, and ends a quarantine', async () => {
    await nav('Overview').click();
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
    await page.getByRole('button', { name: 'Quarantine kid' }).click();
    const form = page.getByRole('form', { name: 'Quarantine kid' });
    await form.getByRole('button', { name: 'Quarantine now' }).click();
    const error = fieldError(form, 'Why? (kept in the history)');
    await error.waitFor();
    expect(await text(error)).toMatch(/length/);

    await form.getByLabel('Why? (kept in the history)').fill('downloads from a strange site');
    await form.getByRole('button', { name: 'Quarantine now' }).click();
    const kid = page.locator('article[data-vm="kid"]');
    await kid.getByText('Quarantined since').waitFor();
    expect(await text(kid.locator('.pill'))).toBe('Internet off');
    expect(server.policy.getVm('kid').quarantine?.reason).toBe('downloads from a strange site');
    expect(server.applied.at(-1)!.vms.find((v) => v.name === 'kid')!.quarantine).toBeDefined();

    await page.getByRole('button', { name: 'End quarantine of work' }).click();
    await page.getByRole('button', { name: 'Quarantine work' }).waitFor();
    expect(server.policy.getVm('work').quarantine).toBeUndefined();
  });

  it('pauses the internet of a VM for an hour, and resumes it', async () => {
    const work = page.locator('article[data-vm="work"]');
    expect(await work.getByLabel('Pause for').inputValue()).toBe('60');
    const asked = Date.now();
    await page.getByRole('button', { name: 'Pause internet for work' }).click();
    await work.getByText('Internet paused until').waitFor();
    expect(await text(work.locator('.pill'))).toBe('Internet paused');
    const pause = server.policy.getVm('work').pause!;
    expect(Date.parse(pause.until!)).toBeGreaterThanOrEqual(asked + 59 * 60_000);
    expect(Date.parse(pause.until!)).toBeLessThanOrEqual(Date.now() + 61 * 60_000);
    expect(server.applied.at(-1)!.vms.find((v) => v.name === 'work')!.pause).toEqual(pause);
    await page.screenshot({ path: `${SHOTS}-paused.png`, fullPage: true });

    await page.getByRole('button', { name: 'Resume internet for work' }).click();
    await page.getByRole('button', { name: 'Pause internet for work' }).waitFor();
    expect(server.policy.getVm('work').pause).toBeUndefined();
  });

  it('approves an access request for some minutes', async () => {
    const request = server.store.accessRequests.create(
      { vm: 'kid', domain: 'homework.example', url: 'https://homework.example/maths', reason: 'for school' },
      'guest:kid',
    );
    await nav(/^Requests/).click();
    await page.getByRole('heading', { level: 1, name: 'Access requests' }).waitFor();
    const card = page.locator(`article[data-request="${request.id}"]`);
    expect(await text(card.locator('h3'))).toBe('kid asks for homework.example');
    expect(await text(card)).toContain('for school');
    await card.getByLabel('Allow for').selectOption('30');
    await page.screenshot({ path: `${SHOTS}-requests.png`, fullPage: true });
    const asked = Date.now();
    await card.getByRole('button', { name: 'Approve homework.example for kid' }).click();

    await page.locator(`li[data-request="${request.id}"]`, { hasText: 'approved until' }).waitFor();
    const decided = server.store.accessRequests.get(request.id)!;
    expect(decided).toMatchObject({ status: 'approved', decidedBy: 'user:admin' });
    const until = Date.parse(decided.until!);
    expect(until).toBeGreaterThanOrEqual(asked + 29 * 60_000);
    expect(until).toBeLessThanOrEqual(Date.now() + 31 * 60_000);
    expect(server.policy.getVm('kid').rules![0]).toMatchObject({
      id: decided.ruleId,
      action: 'accept',
      to: { domain: 'homework.example' },
      expires: decided.until,
    });
    await page.locator('#pending-count').waitFor({ state: 'hidden' });
  });

  it('adds a schedule from a preset', async () => {
    await nav('Schedules').click();
    await page.getByRole('heading', { level: 1, name: 'Schedules' }).waitFor();
    const form = page.locator('form.schedule-form');
    await form.getByRole('button', { name: /^School hours/ }).click();
    await form.getByRole('group', { name: 'For which VMs' }).getByLabel('kid').check();
    await form.getByRole('button', { name: 'Add schedule' }).click();
    await page.locator('article[data-schedule="school-hours"]').waitFor();
    expect(server.policy.getSchedule('school-hours')).toMatchObject({
      vms: ['kid'],
      mode: 'allowlist-only',
      timezone: 'Europe/Berlin',
      windows: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '08:00', end: '15:00' }],
      enabled: true,
    });

    // the same name again is refused, next to the name
    await form.getByRole('button', { name: /^School hours/ }).click();
    await form.getByRole('group', { name: 'For which VMs' }).getByLabel('kid').check();
    await form.getByRole('button', { name: 'Add schedule' }).click();
    const error = fieldError(form, 'Name');
    await error.waitFor();
    expect(await text(error)).toContain('exists already');
  });

  it('shows the profiles, built-ins marked', async () => {
    await nav('Profiles').click();
    await page.getByRole('heading', { level: 1, name: 'Profiles' }).waitFor();
    expect(await text(page.locator('article[data-profile="kid"] .pill'))).toBe('Built-in');
    expect(await text(page.locator('article[data-profile="office"] .pill'))).toBe('Your own');
  });

  it('pages through the history', async () => {
    await nav('History').click();
    await page.getByRole('heading', { level: 1, name: 'History' }).waitFor();
    const first = page.locator('tbody tr').first();
    expect(await text(first.locator('[data-label="Who"]'))).toBe('admin');
    expect(await text(first.locator('[data-label="What"]'))).toBe('Schedule added');
    expect(await page.locator('tbody tr').count()).toBe(server.store.audit.list({ limit: 25 }).items.length);
  });

  it('shows no time budget for a VM whose profile has none', async () => {
    await page.goto(`${server.url}/#/vm/kid`);
    await page.getByRole('heading', { level: 1, name: 'kid' }).waitFor();
    await page.getByRole('heading', { level: 2, name: 'Rules' }).waitFor();
    expect(await page.getByRole('heading', { name: 'Time today' }).count()).toBe(0);
    expect(await page.getByRole('button', { name: /more today$/ }).count()).toBe(0);
  });

  it("shows a VM's time today and gives it more", async () => {
    // a daily budget on the profile of work, through the API
    const { name, ...office } = server.policy.current().profiles.find((p) => p.name === 'office')!;
    const budget = async (dailyMinutes: number): Promise<void> => {
      const res = await fetch(`${server.url}/api/v1/profiles/${name}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
        body: JSON.stringify({ name, ...office, parental: { dailyMinutes, timezone: 'Europe/Berlin' } }),
      });
      expect(res.status).toBe(200);
    };
    const panel = page.locator('section.budget');

    // no minutes at all: blocked until the next midnight (the browser's clock is Berlin's too)
    await budget(0);
    await page.goto(`${server.url}/#/vm/work`);
    await panel.getByRole('heading', { name: 'Time today' }).waitFor();
    expect(await text(panel.locator('.note'))).toBe('Time is up: blocked until 00:00.');

    await budget(60);
    await page.reload();
    await panel.getByRole('heading', { name: 'Time today' }).waitFor();
    expect(await text(panel.locator('.now'))).toBe('0 of 60 minutes used');
    expect(await text(panel)).toContain('60 minutes left today.');
    await panel.getByRole('button', { name: 'Give work 30 minutes more today' }).click();
    await panel.getByText('(+30 extra)').waitFor();
    expect(await text(panel)).toContain('90 minutes left today.');
    expect(await text(page.locator('#status'))).toContain('work has 30 minutes more today.');
    const usage = (await (
      await fetch(`${server.url}/api/v1/vms/work/budget`, { headers: { authorization: `Bearer ${TOKEN}` } })
    ).json()) as Record<string, unknown>;
    expect(usage).toMatchObject({ dailyMinutes: 60, extraMinutes: 30, usedSeconds: 0 });
    expect(await panel.getByRole('button').allTextContents()).toEqual(['+15 min', '+30 min', '+1 hour']);
    await page.screenshot({ path: `${SHOTS}-budget.png`, fullPage: true });
  });

  it("shows a VM's recent look-ups: what was allowed, what was blocked and why", async () => {
    const at = Date.now();
    const log = server.queryLog;
    log.record('kid', at - 3000, 'example.org', 'A', 'allow', undefined, ['203.0.113.10'], 12, false);
    log.record(
      'kid',
      at - 2000,
      'roblox.com',
      'A',
      'block',
      { kind: 'category', list: 'games', entry: 'roblox.com' },
      ['10.20.0.1'],
      undefined,
      false,
    );
    log.record(
      'kid',
      at - 1000,
      'www.youtube.com',
      'HTTPS',
      'block',
      { kind: 'service', list: 'youtube', entry: 'youtube.com' },
      ['10.20.0.1'],
      undefined,
      false,
    );
    log.record('work', at, 'not-kids.example', 'A', 'allow', undefined, [], undefined, true);
    await page.goto(`${server.url}/#/vm/kid`);
    await page.getByRole('heading', { level: 1, name: 'kid' }).waitFor();
    const panel = page.locator('section.lookups');
    await panel.getByText('roblox.com').waitFor();
    const rows = await panel.locator('tbody tr').allInnerTexts();
    expect(
      rows.map((r) =>
        r
          .replace(/^\d\d:\d\d\s+/, '')
          .replace(/\s+/g, ' ')
          .trim(),
      ),
    ).toEqual([
      'www.youtube.com HTTPS Blocked: youtube',
      'roblox.com Blocked: "games" category',
      'example.org Allowed',
    ]);
    await page.screenshot({ path: `${SHOTS}-lookups.png`, fullPage: true });
  });

  it('lists a new device and adds it as a VM', async () => {
    await nav('Overview').click();
    const card = page.locator(`article[data-device="${NEW_DEVICE.mac}"]`);
    await card.waitFor();
    expect(await text(card.locator('h3'))).toBe(NEW_DEVICE.hostname);
    expect(await text(card)).toContain(NEW_DEVICE.ipv4);
    // the VM the leases also hold is not new
    expect(await page.locator('article[data-device="52:54:00:00:00:01"]').count()).toBe(0);
    const form = card.getByRole('form', { name: `Add ${NEW_DEVICE.hostname}` });
    expect(await form.getByLabel('Name', { exact: true }).inputValue()).toBe('kids-tablet');

    // a taken name is refused next to the name
    await form.getByLabel('Name', { exact: true }).fill('kid');
    await form.getByLabel('Profile').selectOption('kid');
    await form.getByRole('button', { name: 'Add this device' }).click();
    const error = fieldError(form, 'Name');
    await error.waitFor();
    expect(await text(error)).not.toBe('');
    expect(await form.getByLabel('Name', { exact: true }).getAttribute('aria-invalid')).toBe('true');

    await form.getByLabel('Name', { exact: true }).fill('tablet');
    await form.getByRole('button', { name: 'Add this device' }).click();
    await page.locator('article[data-vm="tablet"]').waitFor();
    await card.waitFor({ state: 'detached' });
    expect(server.policy.getVm('tablet')).toMatchObject({
      mac: NEW_DEVICE.mac,
      ipv4: NEW_DEVICE.ipv4,
      profile: 'kid',
    });
    expect(server.applied.at(-1)!.vms.some((v) => v.name === 'tablet')).toBe(true);
    expect(await page.getByRole('heading', { name: 'New devices' }).count()).toBe(0);
  });

  it('lists the alerts and says the IPS is not running here', async () => {
    const alert = server.store.alerts.add({
      at: new Date().toISOString(),
      vm: 'kid',
      src: '10.20.0.11',
      dest: '198.51.100.9',
      proto: 'TCP',
      signatureId: 2027865,
      signature: 'ET MALWARE Suspicious beacon',
      category: 'A Network Trojan was detected',
      severity: 1,
      action: 'blocked',
    });
    await nav('Alerts').click();
    await page.getByRole('heading', { level: 1, name: 'Alerts' }).waitFor();
    expect(await nav('Alerts').getAttribute('aria-current')).toBe('page');
    const item = page.locator(`li[data-alert="${alert.id}"]`);
    await item.waitFor();
    expect(await text(item)).toContain('ET MALWARE Suspicious beacon');
    expect(await text(item)).toContain('High');
    expect(await text(item)).toContain('10.20.0.11 → 198.51.100.9');
    expect(await text(item)).toContain('blocked');
    expect(await text(page.locator('.ips-off'))).toBe('The IPS is not running on this gateway.');
    expect(await page.getByRole('button', { name: /Unblock/ }).count()).toBe(0);
    await page.screenshot({ path: `${SHOTS}-alerts.png`, fullPage: true });
  });

  it('fits a phone screen', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await nav('Overview').click();
    await page.locator('article[data-vm="kid"]').waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    const button = await page.getByRole('button', { name: 'End quarantine of kid' }).boundingBox();
    expect(button!.height).toBeGreaterThanOrEqual(44);
    await page.screenshot({ path: `${SHOTS}-phone.png`, fullPage: true });
  });

  it('never reached outside 127.0.0.1 and raised no script or policy errors', () => {
    expect(offsiteRequests).toEqual([]);
    expect(pageErrors).toEqual([]);
    expect(consoleErrors).toEqual([]);
  });
});
