import { readFile, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import type { Policy } from '../policy/model.js';
import {
  apiCommand,
  clientFor,
  group,
  usage,
  type ApiCommandOptions,
  type CliContext,
} from './api-commands.js';
import { asJson } from './output.js';

/** `portcullis policy export [--file] [--format]` and `portcullis policy import <file>`. */
export function registerPolicyIoCommands(program: Command, ctx: CliContext): void {
  const policy = group(program, 'policy', 'the whole policy as code');

  apiCommand(policy, 'export', 'print the whole policy (YAML by default), or write it to a file')
    .option('--file <path>', 'write to this file instead of stdout')
    .option('--format <format>', 'yaml or json (default: yaml, or json with --json)')
    .action(async (opts: ApiCommandOptions & { file?: string; format?: string }) => {
      const format = opts.format ?? (opts.json ? 'json' : 'yaml');
      if (format !== 'yaml' && format !== 'json') throw usage('--format is yaml or json', '--format');
      const text =
        format === 'yaml'
          ? await clientFor(opts, ctx).text('/policy', {
              query: { format: 'yaml' },
              accept: 'application/yaml',
            })
          : asJson(await clientFor(opts, ctx).get<Policy>('/policy'));
      if (opts.file === undefined) return ctx.io.out(text);
      await writeFile(opts.file, text);
      ctx.io.out(opts.json ? asJson({ file: opts.file, format }) : `wrote the policy to ${opts.file}\n`);
    });

  apiCommand(
    policy,
    'import <file>',
    'replace the whole policy with a YAML or JSON file, as one change (or none)',
    true,
  ).action(async (file: string, opts: ApiCommandOptions) => {
    const text = await readFile(file, 'utf8');
    const contentType = file.endsWith('.json') ? 'application/json' : 'application/yaml';
    const result = await clientFor(opts, ctx).request<Policy>('PUT', '/policy', { raw: text, contentType });
    ctx.io.out(
      opts.json
        ? asJson(result)
        : `imported ${file}: ${result.vms.length} VMs, ${result.profiles.length} custom profiles, ${result.schedules.length} schedules\n`,
    );
  });
}
