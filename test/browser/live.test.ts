import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALERT } from '../../gateway/src/actions/test-fixtures.js';
import { ARTIFACTS, openChromium, type OpenChromium } from './chromium.js';
import { startDashboardServer, type DashboardServer } from './dashboard-server.js';

/**
 * The dashboard's live side in Debian's Chromium against the real service: alerts,
 * blocks and requests arrive over Server-Sent Events without a reload, and the charts
 * (uPlot, served by the gateway) draw the traffic history. Screenshots go to
 * test/artifacts/ (kept by CI).
 */

const ADMIN = { name: 'admin', role: 'admin', password: 'the admin password' };
/** A parent who looks after alice, the kid's owner in the seed policy; not the work VM's. */
const PARENT = { name: 'mum', role: 'parent', people: ['alice'], password: 'the parent password' };
/** The config's API token: reads from outside the browser need it too. */
const TOKEN = 'a-test-token-0123456789';

describe('dashboard, live', () => {
  let server: DashboardServer;
  let page: Page;
  let browser: OpenChromium | undefined;
  let pageErrors: string[] = [];
  let offsite: string[] = [];

  beforeAll(async () => {
    // a point of traffic history every second, so that the charts have lines
    server = await startDashboardServer({
      historyStepSeconds: 1,
      kidDownloads: true,
      users: [ADMIN, PARENT],
      token: TOKEN,
      bundles: true,
    });
    browser = await openChromium({ onlyHost: '127.0.0.1' });
    ({ page, pageErrors, offsite } = browser);
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('shows a new alert on the alerts page as it happens, without a reload', async () => {
    await page.goto(`${server.url}/#/alerts`);
    const login = page.getByRole('form', { name: 'Log in' });
    await login.getByLabel('User name').fill(ADMIN.name);
    await login.getByLabel('Password').fill(ADMIN.password);
    await login.getByRole('button', { name: 'Log in' }).click();
    await expect.poll(() => page.locator('h1').textContent()).toBe('Alerts');
    await expect.poll(() => page.locator('html').getAttribute('data-live')).toBe('');
    expect(await page.getByText('No alerts. Nothing suspicious seen.').count()).toBe(1);
    // a mark on this very page: a reload or a navigation would lose it
    await page.evaluate(() => ((window as unknown as { sameDocument: boolean }).sameDocument = true));
    server.events.emit('ips.alert', {
      ...ALERT,
      signature: 'LAB live alert: kid talked to a bad host',
      severity: 1,
    });
    await page.getByText('LAB live alert: kid talked to a bad host').waitFor();
    expect(await page.evaluate(() => (window as unknown as { sameDocument?: boolean }).sameDocument)).toBe(
      true,
    );
    await page.screenshot({ path: join(ARTIFACTS, 'live-alert.png'), fullPage: true });
  });

  it("follows a rule update's progress on the rule updates page as it happens, without polling", async () => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Rule updates' }).click();
    await expect.poll(() => page.locator('h1').textContent()).toBe('Rule updates');
    const now = page.locator('[data-bundle-progress]');
    expect(await now.textContent()).toBe('Idle');
    await page.evaluate(() => ((window as unknown as { sameDocument: boolean }).sameDocument = true));
    server.events.emit('bundle.progress', { phase: 'download', bytes: 1_000_000, total: 4_000_000 });
    await expect.poll(() => now.textContent()).toBe('download: 25% of 4.0 MB');
    server.events.emit('bundle.progress', { phase: 'switch', version: 2 });
    await expect.poll(() => now.textContent()).toBe('switch (version 2)');
    expect(await now.getAttribute('data-bundle-progress')).toBe('switch');
    await page.screenshot({ path: join(ARTIFACTS, 'live-bundle-progress.png'), fullPage: true });
    // the end: the page reads the state again, in the same document
    server.events.emit('bundle.progress', { phase: 'idle' });
    await expect.poll(() => page.locator('[data-bundle-progress]').textContent()).toBe('Idle');
    expect(await page.evaluate(() => (window as unknown as { sameDocument?: boolean }).sameDocument)).toBe(
      true,
    );
  });

  it('lists alerts, blocked look-ups and requests in the live feed, newest first', async () => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Activity' }).click();
    await expect.poll(() => page.locator('h1').textContent()).toBe('Activity');
    const feed = page.getByRole('list', { name: 'Live events' });
    server.events.emit('dns.blocked', {
      vm: 'kid',
      name: 'casino.example',
      category: 'gambling',
      at: Date.now(),
    });
    server.events.emit('ips.alert', { ...ALERT, signature: 'LAB second alert' });
    await feed.getByText('casino.example').waitFor();
    await feed.getByText('LAB second alert').waitFor();
    // positive control for "newest first": the alert came after the block
    const kinds = await feed
      .locator('li')
      .evaluateAll((lis) => lis.map((li) => li.getAttribute('data-kind')));
    expect(kinds.slice(0, 2)).toEqual(['alert', 'block']);
    await page.screenshot({ path: join(ARTIFACTS, 'live-feed.png'), fullPage: true });
  });

  it('draws the traffic and look-up charts with uPlot, and switches to the day', async () => {
    // the history takes a point a second: wait for a few, the page redraws on each
    await expect
      .poll(async () => (await page.locator('#chart-traffic canvas').count()) > 0, { timeout: 20_000 })
      .toBe(true);
    await expect.poll(async () => page.locator('#chart-dns .u-legend').textContent()).toContain('blocked');
    expect(await page.locator('#chart-traffic .u-legend').textContent()).toContain('kid down');
    // the API the chart draws from has kid's download in it, and nothing for work
    type History = { vms: Record<string, { in: number[] } | undefined> };
    const history = async (): Promise<History> =>
      (await (
        await fetch(`${server.url}/api/v1/stats/history?range=hour`, {
          headers: { authorization: `Bearer ${TOKEN}` },
        })
      ).json()) as History;
    await expect.poll(async () => Math.max(0, ...((await history()).vms.kid?.in ?? []))).toBeGreaterThan(0);
    expect(Math.max(0, ...((await history()).vms.work?.in ?? []))).toBe(0);
    await page.screenshot({ path: join(ARTIFACTS, 'charts-hour.png'), fullPage: true });
    await page.getByRole('link', { name: 'Day' }).click();
    await expect.poll(() => page.locator('h2#charts-heading').textContent()).toBe('The last day');
    await expect.poll(async () => page.locator('#chart-traffic canvas').count()).toBeGreaterThan(0);
  });

  it("gives a parent's live stream their VMs' alerts only", async () => {
    // the control: an admin's stream (the API token), open at the same time, hears both VMs
    const abort = new AbortController();
    const admin = await fetch(`${server.url}/api/v1/events`, {
      headers: { authorization: `Bearer ${TOKEN}` },
      signal: abort.signal,
    });
    let adminText = '';
    const adminRead = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of admin.body as unknown as AsyncIterable<Uint8Array>)
        adminText += decoder.decode(chunk, { stream: true });
    })().catch(() => undefined);

    await page.getByRole('button', { name: 'Log out', exact: true }).click();
    const login = page.getByRole('form', { name: 'Log in' });
    await login.getByLabel('User name').fill(PARENT.name);
    await login.getByLabel('Password').fill(PARENT.password);
    await login.getByRole('button', { name: 'Log in' }).click();
    await expect.poll(() => page.locator('#account-name').textContent()).toBe('mum (parent)');
    // the page's own stream, as the parent's session opens it
    await page.evaluate(() => {
      const w = window as unknown as { heard: string[]; parentStream: EventSource };
      w.heard = [];
      w.parentStream = new EventSource('/api/v1/events');
      w.parentStream.addEventListener('alert', (e) =>
        w.heard.push((JSON.parse(e.data) as { vm: string }).vm),
      );
    });
    await expect
      .poll(() =>
        page.evaluate(() => (window as unknown as { parentStream: EventSource }).parentStream.readyState),
      )
      .toBe(1);
    // the work VM's alert first: were it sent, it would arrive before the kid's
    server.events.emit('ips.alert', { ...ALERT, vm: 'work', signature: 'LAB work alert' });
    server.events.emit('ips.alert', { ...ALERT, vm: 'kid', signature: 'LAB kid alert' });
    await expect
      .poll(() => page.evaluate(() => (window as unknown as { heard: string[] }).heard))
      .toEqual(['kid']);
    await expect.poll(() => adminText).toContain('LAB kid alert');
    expect(adminText).toContain('LAB work alert');
    abort.abort();
    await adminRead;
  });

  it('raised no script errors and reached nothing outside 127.0.0.1', () => {
    expect(pageErrors).toEqual([]);
    expect(offsite).toEqual([]);
  });
});
