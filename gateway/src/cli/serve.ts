import type { Command } from 'commander';
import { buildApp } from '../app.js';
import { loadConfig } from '../config.js';
import { createLogger } from '../log.js';
import { openNftBackend } from '../nft/cli.js';
import { ConntrackCli } from '../nft/conntrack.js';

/**
 * `portcullis serve`: the process. Loads the config, opens the adapters, builds the
 * app, listens on the management address, handles signals. The kernel keeps
 * enforcing the last ruleset after the process exits, however it exits.
 */
export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('run the gateway service (in the security VM, as root)')
    .requiredOption('--config <file>', 'service configuration YAML')
    .action(async (opts: { config: string }) => {
      // nft reads `meta time` and `meta hour` in the process time zone: the compiler speaks UTC
      process.env.TZ = 'UTC';
      const log = createLogger();
      const config = loadConfig(opts.config);
      const nft = await openNftBackend(config.nft.backend);
      const app = await buildApp(config, { nft, log, conntrack: new ConntrackCli() });
      let stopping = false;
      const shutdown = (signal: string): void => {
        if (stopping) return;
        stopping = true;
        log.info({ signal }, 'stopping; the kernel keeps enforcing the last ruleset');
        const force = setTimeout(() => process.exit(1), 10_000);
        force.unref();
        app
          .stop()
          .then(() => process.exit(0))
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
        { api: `http://${config.api.listen}:${config.api.port}`, nft: nft.kind },
        'portcullis serving',
      );
      notifySystemd();
    });
}

/** Tell systemd (Type=notify) we are ready, when it asked. */
function notifySystemd(): void {
  const socket = process.env.NOTIFY_SOCKET;
  if (!socket) return;
  import('node:child_process')
    .then(({ execFile }) => execFile('systemd-notify', ['--ready'], () => undefined))
    .catch(() => undefined);
}
