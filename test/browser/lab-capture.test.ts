import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ns } from '../../appliance/lab/topology.js';
import { summarisePcap } from '../../gateway/src/capture/pcap.js';
import { curl, down, sleep, state, topology, up } from '../lab/harness.js';
import { ARTIFACTS, openChromium, type OpenChromium } from './chromium.js';

/**
 * An admin takes packet captures from the dashboard of the lab's real service, in
 * Debian's Chromium (in the lab's management namespace): a capture of the kid while it
 * downloads, watched until it ends and downloaded as a pcap; and the capture of an
 * alert's flow, started from the alert's row. Screenshots go to test/artifacts/.
 */
const MGMT = topology.mgmt.secvm.split('/')[0]!;
const BASE = `https://${MGMT}:${topology.api.port}`;
const web = topology.internet.web;

describe('the dashboard of the lab, an admin taking captures', { timeout: 120_000 }, () => {
  let page: Page;
  let browser: OpenChromium | undefined;
  let dir: string;
  let pageErrors: string[] = [];

  beforeAll(async () => {
    await up();
    browser = await openChromium({
      netns: ns('host'),
      ignoreHTTPSErrors: true,
      acceptDownloads: true,
      locale: 'en-GB',
      timeoutMs: 20_000,
    });
    ({ page, dir, pageErrors } = browser);
  });

  afterAll(async () => {
    await browser?.close();
    await down();
  });

  const shot = (name: string): Promise<Buffer> =>
    page.screenshot({ path: join(ARTIFACTS, `lab-${name}.png`), fullPage: true });

  it('logs the admin in and takes a capture of the kid: start, watch it run, download the pcap', async () => {
    await page.goto(`${BASE}/`);
    const form = page.getByRole('form', { name: 'Log in' });
    await form.getByLabel('User name').fill(state().auth!.user);
    await form.getByLabel('Password').fill(state().auth!.password);
    await form.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();

    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Captures' }).click();
    await page.getByRole('heading', { level: 1, name: 'Packet captures' }).waitFor();
    const start = page.getByRole('form', { name: 'Start a capture' });
    await start.getByLabel('VM').selectOption('kid');
    await start.getByLabel('Seconds').fill('5');
    await start.getByRole('button', { name: 'Start capture' }).click();
    const running = page.locator('li[data-capture][data-state="running"]');
    await running.waitFor();
    await shot('admin-capture-running');
    // the kid downloads while the capture runs
    const dl = await curl(
      'kid',
      `http://${web}/bytes?n=500000`,
      ['-o', '/dev/null', '-w', '%{size_download}'],
      10,
    );
    expect(dl.body).toBe('500000');

    const done = page.locator('li[data-capture][data-state="done"]').first();
    await done.waitFor({ timeout: 30_000 });
    const meta = ((await done.textContent()) ?? '').replace(/\s+/g, ' ');
    const shown = Number(/(\d+) packets/.exec(meta)?.[1]);
    expect(shown).toBeGreaterThan(100);
    await shot('admin-capture-done');

    const [download] = await Promise.all([
      page.waitForEvent('download'),
      done.getByRole('link', { name: /^Download the capture of kid/ }).click(),
    ]);
    const file = join(dir, download.suggestedFilename());
    await download.saveAs(file);
    expect(download.suggestedFilename()).toMatch(/^portcullis-.*-kid-[0-9a-f]{6}\.pcap$/);
    const pcap = readFileSync(file);
    expect(pcap.readUInt32LE(0)).toBe(0xa1b2c3d4);
    expect(summarisePcap(pcap).packets).toBe(shown);
  });

  it("captures an alert's flow from the alert's row", async () => {
    // the lab's rule 1000002 alerts on ALERTME in a URL
    expect((await curl('kid', `http://${web}/ALERTME-browser`)).ok).toBe(true);
    await page.goto(`${BASE}/#/alerts`);
    const row = page.locator('li[data-alert]', { hasText: 'lab: ALERTME' }).first();
    for (let i = 0; i < 20 && (await row.count()) === 0; i++) {
      await sleep(500);
      await page.reload();
    }
    await row.getByRole('button', { name: /^Capture this flow/ }).click();
    await page.getByRole('heading', { level: 1, name: 'Packet captures' }).waitFor();
    const flow = page.locator('li[data-capture]', { hasText: 'alert ' }).first();
    await flow.waitFor();
    expect(await flow.textContent()).toContain(`host ${web}`);
    await shot('admin-capture-flow');
    // stop it: it would run for a minute (the page redraws each second while it runs and
    // holds still while a button waits for its confirmation; a click can still meet a
    // redraw already on its way, so try again then)
    for (let i = 0; i < 5 && (await flow.count()) > 0; i++) {
      await flow.getByRole('button', { name: /^Stop/ }).click();
      await flow
        .getByRole('button', { name: /^Yes, delete/ })
        .click({ timeout: 2000 })
        .catch(() => undefined);
      await flow.waitFor({ state: 'detached', timeout: 3000 }).catch(() => undefined);
    }
    expect(await flow.count()).toBe(0);
  });

  it('raised no script errors', () => {
    expect(pageErrors).toEqual([]);
  });
});
