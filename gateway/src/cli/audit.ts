import type { Command } from 'commander';
import type { AuditRecord } from '../store/types.js';
import { apiCommand, clientFor, type ApiCommandOptions, type CliContext } from './api-commands.js';
import { asJson, table } from './output.js';

interface AuditOptions extends ApiCommandOptions {
  readonly limit: string;
  readonly before?: string;
  readonly actor?: string;
  readonly action?: string;
  readonly target?: string;
}

/** `portcullis audit`: the audit log, newest first. */
export function registerAuditCommand(program: Command, ctx: CliContext): void {
  apiCommand(program, 'audit', 'show the audit log, newest first')
    .option('--limit <n>', 'how many entries', '20')
    .option('--before <id>', 'entries older than this id (for the next page)')
    .option('--actor <who>', 'only changes by this actor')
    .option('--action <what>', 'only this action, e.g. vm.quarantine')
    .option('--target <thing>', 'only this target (vm/kid), or a prefix ending in / (vm/)')
    .action(async (opts: AuditOptions) => {
      const page = await clientFor(opts, ctx).get<{ items: AuditRecord[]; nextBefore?: number }>('/audit', {
        limit: opts.limit,
        before: opts.before,
        actor: opts.actor,
        action: opts.action,
        target: opts.target,
      });
      if (opts.json) return ctx.io.out(asJson(page));
      ctx.io.out(
        table(page.items, [
          ['ID', (r) => r.id],
          ['AT', (r) => r.at],
          ['ACTOR', (r) => r.actor],
          ['ACTION', (r) => r.action],
          ['TARGET', (r) => r.target],
          ['REASON', (r) => r.reason],
        ]),
      );
      if (page.nextBefore !== undefined) ctx.io.out(`(more: --before ${page.nextBefore})\n`);
    });
}
