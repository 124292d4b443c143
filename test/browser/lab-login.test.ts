import { join } from 'node:path';
import type { BrowserContext, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labStorePath, setInternetHosts } from '../../appliance/lab/builder.js';
import { ns } from '../../appliance/lab/topology.js';
import { hashPassword } from '../../gateway/src/auth/password.js';
import { Store } from '../../gateway/src/store/store.js';
import { STATE_DIR, api, curl, down, sleep, state, topology, up } from '../lab/harness.js';
import { ARTIFACTS, openChromium, type OpenChromium } from './chromium.js';

/**
 * The dashboard of the lab's real service (TLS, logins, the kernel, the guests) in
 * Debian's Chromium, which runs in the lab's management namespace and so reaches the
 * management address itself. A parent logs in and sees only the kid; pausing the kid
 * stops its traffic; approving its request opens the site; wrong passwords are limited;
 * a rebound name (Host) and a cross-site POST are refused. Screenshots go to
 * test/artifacts/ (gitignored).
 */
const MGMT = topology.mgmt.secvm.split('/')[0]!;
const BASE = `https://${MGMT}:${topology.api.port}`;
const REBOUND = 'rebound.example';
const PARENT = { name: 'mum', password: 'mum has a long password', person: 'sam' };
const APPROVE = 'bet365.com'; // in the kid profile's gambling category
const web = topology.internet.web;
const spare = topology.internet.hosts['spare.test']!;

describe('the dashboard of the lab, logged in as a parent', { timeout: 120_000 }, () => {
  let context: BrowserContext;
  let page: Page;
  let browser: OpenChromium | undefined;
  let pageErrors: string[] = [];

  beforeAll(async () => {
    await up();
    setInternetHosts({ ...topology.internet.hosts, [APPROVE]: spare }, STATE_DIR);
    // the kid belongs to sam, whom mum looks after; work and browse belong to nobody she knows
    expect((await api('PATCH', '/api/v1/vms/kid', { owner: PARENT.person })).status).toBe(200);
    const store = Store.open({ path: labStorePath(STATE_DIR) });
    try {
      store.auth.addUser(
        {
          name: PARENT.name,
          role: 'parent',
          people: [PARENT.person],
          passwordHash: await hashPassword(PARENT.password),
        },
        'test',
      );
    } finally {
      store.close();
    }

    // Chromium inside the management namespace, which reaches the management address itself
    browser = await openChromium({
      netns: ns('host'),
      ignoreHTTPSErrors: true,
      locale: 'en-GB',
      timeoutMs: 20_000,
      // DNS rebinding: a name of somebody else's that resolves to the management address
      args: [`--host-resolver-rules=MAP ${REBOUND} ${MGMT}`],
    });
    ({ context, page, pageErrors } = browser);
  });

  afterAll(async () => {
    await browser?.close();
    await down();
  });

  const text = async (l: Locator): Promise<string> =>
    ((await l.textContent()) ?? '').replace(/\s+/g, ' ').trim();
  const shot = (name: string): Promise<Buffer> =>
    page.screenshot({ path: join(ARTIFACTS, `lab-${name}.png`), fullPage: true });
  const kidOnline = async (): Promise<boolean> => (await curl('kid', `http://${web}/`, [], 2)).ok;
  async function until(what: string, check: () => Promise<boolean>, ms = 15_000): Promise<void> {
    const end = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > end) throw new Error(`${what} did not happen within ${ms} ms`);
      await sleep(300);
    }
  }

  /** Fill in the login form and send it; the status the service answered. */
  async function logIn(user: string, password: string): Promise<number> {
    const form = page.getByRole('form', { name: 'Log in' });
    await form.waitFor();
    await form.getByLabel('User name').fill(user);
    await form.getByLabel('Password').fill(password);
    const answer = page.waitForResponse((r) => r.url().endsWith('/api/v1/auth/login'));
    await form.getByRole('button', { name: 'Log in' }).click();
    return (await answer).status();
  }

  it('logs a parent in over TLS; she sees the kid and nothing else', async () => {
    const res = await page.goto(`${BASE}/`);
    expect(res?.status()).toBe(200);
    expect(res?.url().startsWith('https://')).toBe(true);
    await shot('login');
    await logIn(PARENT.name, PARENT.password);
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
    await page.locator('article[data-vm="kid"]').waitFor();
    expect(await text(page.locator('#account-name'))).toBe('mum (parent)');
    expect(
      await page.locator('article[data-vm]').evaluateAll((els) => els.map((e) => e.getAttribute('data-vm'))),
    ).toEqual(['kid']);
    const nav = page.getByRole('navigation', { name: 'Main' });
    expect(await nav.getByRole('link', { name: 'History' }).isVisible()).toBe(false);
    expect(await nav.getByRole('link', { name: 'Profiles' }).isVisible()).toBe(false);
    expect(await page.getByRole('button', { name: 'Quarantine kid' }).count()).toBe(0);
    await shot('parent-overview');

    // the work VM's page, asked for by its address: refused by the API, nothing shown
    await page.goto(`${BASE}/#/vm/work`);
    await page.getByRole('heading', { level: 1, name: 'Something went wrong' }).waitFor();
    expect(await text(page.locator('main'))).toContain('is not one of the VMs mum looks after');
    await shot('parent-work-refused');
  });

  it("pauses the kid from the dashboard: the kid's traffic stops, and comes back on resume", async () => {
    expect(await kidOnline()).toBe(true);
    await page.goto(`${BASE}/#/`);
    const kid = page.locator('article[data-vm="kid"]');
    await kid.getByRole('button', { name: 'Pause internet for kid' }).click();
    await kid.getByText('Internet paused until').waitFor();
    await shot('parent-paused');
    await until('the kid going offline', async () => !(await kidOnline()));
    // positive control: another guest still gets out
    expect((await curl('browse', `http://${web}/`, [], 2)).ok).toBe(true);
    const audit = await api<{ items: Array<{ actor: string; action: string }> }>(
      'GET',
      '/api/v1/audit?limit=5',
    );
    expect(audit.body.items.find((e) => e.action === 'vm.pause')?.actor).toBe('user:mum');

    await kid.getByRole('button', { name: 'Resume internet for kid' }).click();
    await kid.getByRole('button', { name: 'Pause internet for kid' }).waitFor();
    await until('the kid coming back online', kidOnline);
  });

  it("approves the kid's request: the site opens", async () => {
    expect((await curl('kid', `http://${APPROVE}/`, [], 2)).body).not.toContain(`"host":"${APPROVE}"`);
    // the kid asks, from the block page's form
    const blockPage = await curl('kid', `http://${APPROVE}/`, [], 3);
    const token = /name="token" value="([^"]+)"/.exec(blockPage.body)?.[1];
    expect(token, 'the block page offers to ask a parent').toBeDefined();
    const asked = await curl(
      'kid',
      `http://${APPROVE}/.portcullis/ask`,
      [
        '-X',
        'POST',
        '--data-urlencode',
        `domain=${APPROVE}`,
        '--data-urlencode',
        'reason=homework',
        '--data-urlencode',
        `token=${token}`,
      ],
      3,
    );
    expect(asked.body).toContain('Your request was sent');

    await page.goto(`${BASE}/#/requests`);
    await page.getByRole('heading', { level: 1, name: 'Access requests' }).waitFor();
    const card = page.locator('article[data-request]', { hasText: APPROVE });
    await card.waitFor();
    await card.getByLabel('Allow for').selectOption('30');
    await shot('parent-request');
    await card.getByRole('button', { name: `Approve ${APPROVE} for kid` }).click();
    await page.locator('li[data-request]', { hasText: 'approved until' }).waitFor();
    await until('the approved site loading for the kid', async () => {
      const r = await curl('kid', `http://${APPROVE}/`, [], 3);
      return r.ok && r.body.includes(`"host":"${APPROVE}"`);
    });
  });

  it('refuses a rebound name (Host) with 421, and serves the real address', async () => {
    const rebound = await page.goto(`https://${REBOUND}:${topology.api.port}/`);
    expect(rebound?.status()).toBe(421);
    expect(await text(page.locator('body'))).toContain('MISDIRECTED_REQUEST');
    await shot('rebound-421');
    const api421 = await page.goto(`https://${REBOUND}:${topology.api.port}/api/v1/vms`);
    expect(api421?.status()).toBe(421);
    expect((await page.goto(`${BASE}/api/v1/health`))?.status()).toBe(200);
  });

  it('refuses a POST from another site, though the parent is logged in', async () => {
    const attacker = 'https://attacker.example/';
    await context.route(`${attacker}**`, (route) =>
      route.fulfill({
        contentType: 'text/html',
        body: `<!doctype html><form id="f" method="POST" action="${BASE}/api/v1/vms/kid/pause" enctype="text/plain">
          <input name='{"minutes":60,"x":"' value='"}'></form><script>document.getElementById('f').submit()</script>`,
      }),
    );
    const answer = page.waitForResponse((r) => r.url() === `${BASE}/api/v1/vms/kid/pause`);
    await page.goto(attacker);
    const res = await answer;
    expect(res.status()).toBe(403);
    expect(await res.text()).toContain('requests from other sites are refused');
    await shot('cross-site-403');
    const kid = await api<{ pause?: unknown }>('GET', '/api/v1/vms/kid');
    expect(kid.body.pause).toBeUndefined();
    expect(await kidOnline()).toBe(true);
    // positive control: the same change from the dashboard's own page goes through (and back)
    await page.goto(`${BASE}/#/`);
    const card = page.locator('article[data-vm="kid"]');
    await card.getByRole('button', { name: 'Pause internet for kid' }).click();
    await card.getByText('Internet paused until').waitFor();
    await card.getByRole('button', { name: 'Resume internet for kid' }).click();
    await card.getByRole('button', { name: 'Pause internet for kid' }).waitFor();
  });

  it('limits wrong passwords: the right one is refused for a while after too many', async () => {
    await page.getByRole('button', { name: 'Log out', exact: true }).click();
    const form = page.getByRole('form', { name: 'Log in' });
    for (let i = 0; i < 5; i++) {
      expect(await logIn(PARENT.name, `wrong password ${i}`)).toBe(401);
      await form.locator('.field-error', { hasText: 'Wrong user name or password' }).waitFor();
    }
    expect(await logIn(PARENT.name, PARENT.password)).toBe(429);
    const limited = form.locator('.field-error', { hasText: 'too many failed logins' });
    await limited.waitFor();
    expect(await text(limited)).toMatch(/^Too many failed logins for "mum"; try again in \d+ s$/);
    await shot('login-limited');
    expect(await page.getByRole('heading', { level: 1, name: 'Overview' }).count()).toBe(0);
    // the admin, from the same browser, is not locked out (positive control)
    expect(await logIn(state().auth!.user, state().auth!.password)).toBe(200);
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
    expect(await page.locator('article[data-vm]').count()).toBe(topology.guests.length);
    await shot('admin-overview');
  });

  it('raised no script errors', () => {
    expect(pageErrors).toEqual([]);
  });
});
