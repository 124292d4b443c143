import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { buildApp, type AppDeps } from './app.js';
import { applyPendingRestore } from './backup/backup.js';
import { loadConfig, type Config } from './config.js';
import { EventBus } from './events.js';
import { createLogger, type Logger } from './log.js';
import { NftCli, openNftBackend } from './nft/cli.js';
import { SystemdNotifier } from './process/sd-notify.js';
import { ConntrackCli } from './nft/conntrack.js';
import { IpNeighbours } from './nft/neighbours.js';
import { Store } from './store/store.js';
import { detectQueueKind } from './nft/queue.js';
import { ensureTls, tlsEnabled } from './auth/tls-files.js';
import { generatePassword, hashPassword } from './auth/password.js';

/** Seconds `stop()` may take after SIGTERM or SIGINT before the process exits anyway. */
const STOP_GRACE_MS = 10_000;

/** The adapters of the real service, and how to close them once the app has stopped. */
export interface Adapters extends AppDeps {
  close(): void;
}

/**
 * Open what the service works with: the data folder, nftables (and whether this kernel
 * has the nft `queue` expression, when the IPS is on and the config says `auto`),
 * conntrack, and the store (SQLite in the data folder, migrated).
 */
export async function openAdapters(config: Config, log: Logger): Promise<Adapters> {
  mkdirSync(config.dataDir, { recursive: true });
  const nft = await openNftBackend(config.nft.backend);
  // big transactions and listings run through the nft binary: a listing would fill the
  // in-process context's cache with every set element and slow the next change down
  const nftBulk = nft.kind === 'libnftables' ? new NftCli() : undefined;
  const suricata = config.suricata?.enabled ? config.suricata : undefined;
  const queueKind = suricata?.queueKind === 'auto' ? await detectQueueKind(nft) : undefined;
  const events = new EventBus(log);
  // a restore the API staged is applied before the database opens
  const restore = applyPendingRestore(config.dataDir);
  if (restore?.restored) log.warn({ files: restore.restored }, 'restored the backup staged by the API');
  if (restore?.rejected)
    log.error(
      { reason: restore.rejected },
      'the staged restore no longer checks out: set aside as restore.rejected; the data stays as it was',
    );
  const store = Store.open({ path: join(config.dataDir, 'portcullis.db'), events });
  return {
    log,
    nft,
    ...(nftBulk ? { nftBulk } : {}),
    ...(queueKind ? { queueKind } : {}),
    store,
    events,
    conntrack: new ConntrackCli(),
    neighbours: new IpNeighbours(config.network.lan.iface),
    close() {
      store.close();
      nftBulk?.close();
      nft.close();
    },
  };
}

/**
 * The service process (`portcullis serve --config FILE`): loads the config, opens the
 * adapters, builds and starts the app, listens on the management address, tells
 * systemd it is ready, and stops on SIGTERM or SIGINT. The kernel keeps enforcing the
 * last ruleset after the process exits, however it exits.
 */
export async function serve(configFile: string): Promise<void> {
  // nft reads `meta time` and `meta hour` in the process time zone: the compiler speaks UTC
  process.env.TZ = 'UTC';
  const log = createLogger();
  const config = loadConfig(configFile);
  const adapters = await openAdapters(config, log);
  const tls = tlsEnabled(config) ? ensureTls(config) : undefined;
  if (tls) {
    log.info(
      { fingerprint: tls.fingerprint, created: tls.created },
      tls.created ? 'made a self-signed certificate for the management listener' : 'management listener TLS',
    );
  } else log.warn('api.tls.enabled is false: the management listener speaks plain HTTP');
  await firstAdmin(adapters.store, log);
  const systemd = new SystemdNotifier({
    onError: (err: unknown) => log.warn({ err }, 'cannot notify systemd'),
  });
  const app = await buildApp(config, {
    ...adapters,
    ...(tls ? { tls } : {}),
    configFile,
    // under systemd, a clean exit is followed by a start (Restart=always)
    ...(systemd.enabled ? { restart: () => process.kill(process.pid, 'SIGTERM') } : {}),
  });
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping; the kernel keeps enforcing the last ruleset');
    systemd.stopping();
    const force = setTimeout(() => process.exit(1), STOP_GRACE_MS);
    force.unref();
    app
      .stop()
      .then(() => {
        adapters.close();
        process.exit(0);
      })
      .catch((err: unknown) => {
        log.error({ err }, 'stop failed');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  await app.start();
  await app.http.listen({ host: config.api.listen, port: config.api.port });
  log.info(
    { api: `${tls ? 'https' : 'http'}://${config.api.listen}:${config.api.port}`, nft: adapters.nft.kind },
    'portcullis serving',
  );
  // Type=notify: ready now; WatchdogSec=: pings from the event loop from here on
  systemd.ready();
  if (systemd.watchdogIntervalMs !== undefined)
    log.info({ everyMs: systemd.watchdogIntervalMs }, 'systemd watchdog: pinging from the event loop');
}

/**
 * At the first start (no user in the store): the first admin, `admin` with a random
 * password, printed once in the service's log (the journal). `portcullis user passwd
 * admin` changes it; `portcullis user add` made before the first start skips this.
 */
async function firstAdmin(store: Store, log: Logger): Promise<void> {
  if (store.auth.users().length > 0) return;
  const password = generatePassword();
  store.auth.addUser(
    { name: 'admin', role: 'admin', passwordHash: await hashPassword(password) },
    'first-start',
  );
  log.warn(
    { user: 'admin', password },
    'first start: made the first admin; this password is shown once (change it: portcullis user passwd admin)',
  );
}
