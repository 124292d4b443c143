import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

/** Debian's Chromium, installed by appliance/provision.sh: without it a browser test fails, never skips. */
export const CHROMIUM = '/usr/bin/chromium';
/** Where the browser tests keep their screenshots (gitignored; kept by CI). */
export const ARTIFACTS = join(import.meta.dirname, '..', 'artifacts');

/** Options of {@link openChromium}. */
export interface ChromiumOptions {
  /** Run Chromium inside this network namespace (the lab's management side); default: this one. */
  readonly netns?: string;
  /** Only this host may be reached: other requests are aborted and listed in `offsite`. Default: any. */
  readonly onlyHost?: string;
  /** More command-line switches. */
  readonly args?: readonly string[];
  /** The page's default timeout for actions and waits, ms. Default 15,000. */
  readonly timeoutMs?: number;
  readonly locale?: string;
  readonly timezoneId?: string;
  readonly acceptDownloads?: boolean;
  /** Accept the service's self-signed certificate (a person compares its fingerprint once). */
  readonly ignoreHTTPSErrors?: boolean;
}

/** A headless Chromium with one page, its errors collected. */
export interface OpenChromium {
  readonly context: BrowserContext;
  readonly page: Page;
  /** A scratch folder of this browser (its profile lives below it); removed by close(). */
  readonly dir: string;
  /** Uncaught errors of the page's scripts. */
  readonly pageErrors: string[];
  /** Requests to another host than `onlyHost`, aborted. */
  readonly offsite: string[];
  close(): Promise<void>;
}

/** Start Debian's Chromium headless, as the browser tests use it. */
export async function openChromium(options: ChromiumOptions = {}): Promise<OpenChromium> {
  if (!existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} is missing: run appliance/provision.sh (apt-get install chromium)`);
  mkdirSync(ARTIFACTS, { recursive: true });
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-chromium-'));
  let executablePath = CHROMIUM;
  if (options.netns) {
    // the pipe to Chromium crosses `ip netns exec`
    executablePath = join(dir, 'chromium-in-netns');
    writeFileSync(executablePath, `#!/bin/sh\nexec ip netns exec ${options.netns} ${CHROMIUM} "$@"\n`);
    chmodSync(executablePath, 0o755);
  }
  const context = await chromium.launchPersistentContext(join(dir, 'profile'), {
    executablePath,
    headless: true,
    ignoreHTTPSErrors: options.ignoreHTTPSErrors ?? false,
    acceptDownloads: options.acceptDownloads ?? false,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      ...(options.args ?? []),
    ],
    viewport: { width: 1280, height: 900 },
    ...(options.locale ? { locale: options.locale } : {}),
    ...(options.timezoneId ? { timezoneId: options.timezoneId } : {}),
  });
  const offsite: string[] = [];
  if (options.onlyHost) {
    const host = options.onlyHost;
    await context.route('**/*', (route) => {
      const url = new URL(route.request().url());
      if (url.hostname === host) return route.continue();
      offsite.push(url.href);
      return route.abort();
    });
  }
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(options.timeoutMs ?? 15_000);
  const pageErrors: string[] = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));
  return {
    context,
    page,
    dir,
    pageErrors,
    offsite,
    async close() {
      await context.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
