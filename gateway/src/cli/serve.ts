import type { Command } from 'commander';

/**
 * `portcullis serve`: the service process (`main.ts`), loaded only when this command
 * runs, so that the other commands do not load the service.
 */
export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description(
      'run the gateway service (in the security VM: portcullis.service, as the user portcullis with CAP_NET_ADMIN, CAP_NET_RAW, CAP_NET_BIND_SERVICE, CAP_SYS_NICE)',
    )
    .requiredOption('--config <file>', 'service configuration YAML')
    .action(async (opts: { config: string }) => {
      const { serve } = await import('../main.js');
      await serve(opts.config);
    });
}
