import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { portcullisVersion } from '../cli/version.js';
import type { Config } from '../config.js';
import { PortcullisError } from '../errors.js';
import { EventBus } from '../events.js';
import type { Logger } from '../log.js';
import { Store } from '../store/store.js';
import { applianceSuricataSetup } from '../suricata/ips.js';
import { policyRulesFile } from '../suricata/policy-rules.js';
import { BundleService, type BundleProgressEvent, type BundleResult } from './service.js';
import { JsonBundleSettings } from './settings.js';
import { suricataRuleTester } from './stage.js';
import type { BundleUpdaterOptions } from './updater.js';
import { ENFORCED_RULES } from './versions.js';

/**
 * `portcullis bundle update --local`: a rule update as root on the appliance, without
 * the API, against the service's config, store and bundle folder (like `token create`).
 * It runs the same flow as the service (TUF verification, unpacking, anti-rollback,
 * staging with `suricata -T` and the admin's SID changes, the atomic switch of
 * `current`, audit and history in the store) but only while the service is stopped:
 * the running service holds the DNS lists, the nft sets and Suricata, and only it can
 * swap them live and check Suricata's health. The service puts `current` in force when
 * it next starts.
 */

/** The TUF client's settings of a config (the service and the local update share them). */
export function bundleUpdaterOptions(
  bundles: NonNullable<Config['bundles']>,
  source = bundles.source,
): Omit<BundleUpdaterOptions, 'dataDir' | 'onProgress'> {
  return {
    source,
    trustedRoot: bundles.trustedRoot,
    name: bundles.name,
    channel: bundles.channel,
    applianceVersion: portcullisVersion(),
    limits: { maxDownloadBytes: bundles.maxDownloadMiB * 1024 * 1024 },
    ...(bundles.caFile ? { ca: readFileSync(bundles.caFile, 'utf8') } : {}),
  };
}

/** Whether something accepts TCP connections at `host:port` within `timeoutMs`. */
export function answers(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** Options of {@link localBundleUpdate}. */
export interface LocalUpdateOptions {
  readonly config: Config;
  /** Another repository than the config's (a copy on a USB stick, a folder or URL). */
  readonly source?: string;
  /** Who runs it, for the audit log (`cli:<login>`). */
  readonly actor: string;
  readonly log: Logger;
  readonly onProgress?: (p: BundleProgressEvent) => void;
  /** Whether the service runs; default: its API port answers. */
  readonly serviceRunning?: () => Promise<boolean>;
}

/**
 * Update the rule bundle of a stopped service.
 * @throws CONFIG_INVALID when the config has no `bundles`; CONFLICT while the service
 *   runs; the update's own error (refused bundles are recorded in the store).
 */
export async function localBundleUpdate(o: LocalUpdateOptions): Promise<BundleResult> {
  const { config } = o;
  if (!config.bundles)
    throw new PortcullisError(
      'CONFIG_INVALID',
      'the service config has no `bundles` section: add its source and trustedRoot to update rule bundles',
    );
  const running = await (o.serviceRunning ?? (() => answers(config.api.listen, config.api.port)))();
  if (running)
    throw new PortcullisError(
      'CONFLICT',
      `the service is running (its API answers on ${config.api.listen}:${config.api.port}): it holds the lists and Suricata and puts a bundle in force live; ` +
        'run `portcullis bundle update` without --local, or stop the service first',
    );
  const dir = join(config.dataDir, 'bundles');
  const suricata = config.suricata?.enabled ? config.suricata : undefined;
  const test = suricata
    ? suricataRuleTester(
        applianceSuricataSetup(
          config.dataDir,
          suricata.queue,
          [
            join(dir, 'current', ENFORCED_RULES),
            ...suricata.ruleFiles,
            policyRulesFile(join(config.dataDir, 'suricata', 'policy')),
          ],
          [`${config.network.lan.ipv4}/${config.network.lan.prefix}`],
          suricata.bypass,
        ),
      )
    : undefined;
  const events = new EventBus();
  const store = Store.open({ path: join(config.dataDir, 'portcullis.db'), events });
  try {
    if (o.onProgress) events.on('local-update', 'bundle.progress', o.onProgress);
    const service = new BundleService({
      dir,
      updater: bundleUpdaterOptions(config.bundles, o.source),
      runtime: {
        ...(test ? { test } : {}),
        // nothing runs: the service reads `current` when it starts
        activate: () => Promise.resolve(),
      },
      settings: new JsonBundleSettings(join(dir, 'settings.json')),
      store,
      events,
      registry: new Registry(),
      log: o.log,
      pollSeconds: 0,
      keep: config.bundles.keep,
    });
    await service.init();
    return await service.update(o.actor);
  } finally {
    events.off('local-update');
    store.close();
  }
}
