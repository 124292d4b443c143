import type { Command } from 'commander';
import type { BundleResult, BundleStatusView } from '../bundles/service.js';
import type { BundleSettings } from '../bundles/settings.js';
import type { SidAction } from '../bundles/sids.js';
import type { Bundle } from '../store/types.js';
import { localBundleUpdate } from '../bundles/local.js';
import { loadConfig } from '../config.js';
import { silentLogger } from '../log.js';
import { ApiClient } from './api-client.js';
import { DEFAULT_CONFIG } from './auth.js';
import {
  apiCommand,
  clientFor,
  DEFAULT_API,
  group,
  localActor,
  usage,
  type ApiCommandOptions,
  type CliContext,
} from './api-commands.js';
import { fields, table } from './output.js';

/**
 * `portcullis bundle update | rollback | status | sid | source`: the appliance's side of rule
 * updates, against the running service's API. `update` shows a progress bar on stderr
 * (it reads `GET /bundles` while the update runs).
 */

type Status = BundleStatusView & { history: Bundle[] };

/** A progress bar line for a status: `download [#####.....] 52% 1.3/2.5 MB`. */
export function progressLine(p: BundleStatusView['progress'], width = 30): string {
  if (p.phase === 'idle') return '';
  if (p.bytes === undefined) return `${p.phase}${p.version !== undefined ? ` version ${p.version}` : ''}`;
  const mb = (n: number): string => (n / 1e6).toFixed(1);
  if (!p.total) return `${p.phase} ${mb(p.bytes)} MB`;
  const f = Math.min(1, p.bytes / p.total);
  const done = Math.round(f * width);
  return `${p.phase} [${'#'.repeat(done)}${'.'.repeat(width - done)}] ${Math.round(f * 100)}% ${mb(p.bytes)}/${mb(p.total)} MB`;
}

function resultText(r: BundleResult): string {
  return fields([
    ['result', r.result],
    ['version', r.version],
    ['in force', r.active ?? 'none'],
    ['error', r.code ? `${r.code}: ${r.message}` : undefined],
    ['update to enforced', r.enforcedMs === undefined ? undefined : `${Math.round(r.enforcedMs)} ms`],
  ]);
}

/** `bundle update --local`: the update in this process, against the stopped service's data folder. */
async function localUpdate(
  opts: { json?: boolean; config?: string; source?: string; reason?: string },
  ctx: CliContext,
): Promise<void> {
  const config = loadConfig(opts.config ?? ctx.env.PORTCULLIS_CONFIG ?? DEFAULT_CONFIG);
  let last = '';
  const r = await localBundleUpdate({
    config,
    ...(opts.source !== undefined ? { source: opts.source } : {}),
    actor: ctx.actor ?? localActor(),
    log: silentLogger,
    onProgress: (p) => {
      const line = progressLine(p);
      if (line && line !== last && !opts.json) ctx.io.err(`\r${line.padEnd(last.length)}`);
      last = line || last;
    },
  });
  if (last) ctx.io.err('\n');
  ctx.io.out(
    opts.json
      ? `${JSON.stringify(r, null, 2)}\n`
      : resultText(r) +
          (r.result === 'installed' ? 'in force when the service starts (it reads bundles/current)\n' : ''),
  );
}

/** Register the commands under `bundle`. */
export function registerBundleUpdateCommands(program: Command, ctx: CliContext): void {
  const bundle = group(program, 'bundle', 'rule bundles: updates on this appliance, and the vendor tools');

  apiCommand(
    bundle,
    'update',
    'look for a new rule bundle now and put it in force (progress on stderr)',
    true,
  )
    .option(
      '--local',
      'without the API, as root on the appliance while the service is stopped: verify, stage and switch in its data folder; in force when the service starts',
    )
    .option(
      '--config <file>',
      `with --local: the service configuration (default: $PORTCULLIS_CONFIG or ${DEFAULT_CONFIG})`,
    )
    .option('--source <dir|url>', "with --local: another copy of the vendor's repository (a USB stick)")
    .action(async (opts: ApiCommandOptions & { local?: boolean; config?: string; source?: string }) => {
      if (opts.local) return localUpdate(opts, ctx);
      if (opts.source !== undefined || opts.config !== undefined)
        throw usage('--config and --source go with --local (the service uses its own)', '--local');
      const client = clientFor(opts, ctx);
      const long = new ApiClient({
        baseUrl: opts.api ?? ctx.env.PORTCULLIS_API ?? DEFAULT_API,
        token: opts.token ?? ctx.env.PORTCULLIS_API_TOKEN,
        actor: ctx.actor,
        reason: opts.reason,
        timeoutMs: 30 * 60_000,
      });
      let last = '';
      const timer = setInterval(() => {
        void client
          .get<Status>('/bundles')
          .then((s) => {
            const line = progressLine(s.progress);
            if (line && line !== last && !opts.json) ctx.io.err(`\r${line.padEnd(last.length)}`);
            last = line || last;
          })
          .catch(() => undefined);
      }, 250);
      try {
        const r = await long.post<BundleResult>('/bundles/update', {});
        if (last) ctx.io.err('\n');
        ctx.io.out(opts.json ? `${JSON.stringify(r, null, 2)}\n` : resultText(r));
      } finally {
        clearInterval(timer);
      }
    });

  apiCommand(
    bundle,
    'rollback',
    'go back to the kept bundle version before the one in force (or --version)',
    true,
  )
    .option('--version <n>', 'the kept version to go back to')
    .action(async (opts: ApiCommandOptions & { version?: string }) => {
      const body = opts.version === undefined ? {} : { version: Number(opts.version) };
      if (opts.version !== undefined && !/^[1-9]\d*$/.test(opts.version))
        throw usage('--version must be a bundle version (a positive integer)', '--version');
      const r = await clientFor(opts, ctx).post<BundleResult>('/bundles/rollback', body);
      ctx.io.out(opts.json ? `${JSON.stringify(r, null, 2)}\n` : resultText(r));
    });

  apiCommand(
    bundle,
    'status',
    'the bundle in force, the last result, the kept versions and the history',
  ).action(async (opts: ApiCommandOptions) => {
    const s = await clientFor(opts, ctx).get<Status>('/bundles');
    if (opts.json) return void ctx.io.out(`${JSON.stringify(s, null, 2)}\n`);
    ctx.io.out(
      fields([
        ['in force', s.active ? `${s.active.version} (built ${s.active.created ?? '?'})` : 'none'],
        ['newest verified', s.installed ?? 'none'],
        ['kept', s.versions.join(', ')],
        ['source', `${s.source} (${s.channel})`],
        [
          'last',
          s.last ? `${s.last.result} at ${s.last.at}${s.last.code ? ` (${s.last.code})` : ''}` : 'none',
        ],
        ['next poll', s.nextPoll ?? 'on demand only'],
        ['running', progressLine(s.progress) || undefined],
      ]),
    );
    ctx.io.out(
      table(s.history, [
        ['version', (b) => b.version],
        ['status', (b) => b.status],
        ['installed', (b) => b.installedAt],
        ['detail', (b) => b.detail],
      ]),
    );
  });

  const settings = async (
    opts: ApiCommandOptions,
    change: (s: BundleSettings) => BundleSettings,
  ): Promise<void> => {
    const client = clientFor(opts, ctx);
    const next = change(await client.get<BundleSettings>('/bundles/settings'));
    const r = await client.put<BundleResult>('/bundles/settings', next);
    ctx.io.out(opts.json ? `${JSON.stringify(r, null, 2)}\n` : resultText(r));
  };

  const sid = bundle.command('sid').description('SID changes kept across updates (suricata-update style)');
  apiCommand(sid, 'list', 'the SID changes, in the order they apply').action(
    async (opts: ApiCommandOptions) => {
      const s = await clientFor(opts, ctx).get<BundleSettings>('/bundles/settings');
      if (opts.json) return void ctx.io.out(`${JSON.stringify(s.sids, null, 2)}\n`);
      ctx.io.out(
        table(
          s.sids.map((c, i) => ({ ...c, i })),
          [
            ['#', (c) => c.i],
            ['action', (c) => c.action],
            ['match', (c) => c.match],
            ['from', (c) => c.from],
            ['to', (c) => c.to],
          ],
        ),
      );
    },
  );
  apiCommand(
    sid,
    'add <action> <match>',
    'add a change: enable|disable|drop|modify, matching <sid>, group:<source> or re:<pattern>; applied at once',
    true,
  )
    .option('--from <regex>', 'modify: what to replace')
    .option('--to <text>', 'modify: the replacement')
    .action(
      async (action: string, match: string, opts: ApiCommandOptions & { from?: string; to?: string }) => {
        if (!['enable', 'disable', 'drop', 'modify'].includes(action))
          throw usage('the action is enable, disable, drop or modify', '<action>');
        const change = {
          action: action as SidAction,
          match,
          ...(opts.from !== undefined ? { from: opts.from } : {}),
          ...(opts.to !== undefined ? { to: opts.to } : {}),
        };
        await settings(opts, (s) => ({ ...s, sids: [...s.sids, change] }));
      },
    );
  apiCommand(sid, 'remove <index>', 'remove the change at <index> (see sid list)', true).action(
    async (index: string, opts: ApiCommandOptions) => {
      await settings(opts, (s) => {
        const i = Number(index);
        if (!Number.isInteger(i) || i < 0 || i >= s.sids.length)
          throw usage(`no SID change #${index} (there are ${s.sids.length})`, '<index>');
        return { ...s, sids: s.sids.filter((_, j) => j !== i) };
      });
    },
  );

  const source = bundle
    .command('source')
    .description('extra plain Suricata rule sources, trusted by the sha256 you pin (not signed)');
  apiCommand(source, 'list', 'the extra sources').action(async (opts: ApiCommandOptions) => {
    const s = await clientFor(opts, ctx).get<BundleSettings>('/bundles/settings');
    if (opts.json) return void ctx.io.out(`${JSON.stringify(s.sources, null, 2)}\n`);
    ctx.io.out(
      table(s.sources, [
        ['name', (x) => x.name],
        ['location', (x) => x.location],
        ['pinned sha256', (x) => x.sha256],
      ]),
    );
  });
  apiCommand(
    source,
    'add <name> <location>',
    'add a rules file or tarball by URL or path, pinned by --sha256',
    true,
  )
    .requiredOption('--sha256 <hex>', 'the sha256 of the file you checked')
    .action(async (name: string, location: string, opts: ApiCommandOptions & { sha256: string }) => {
      await settings(opts, (s) => ({
        ...s,
        sources: [...s.sources, { name, location, sha256: opts.sha256 }],
      }));
    });
  apiCommand(source, 'remove <name>', 'remove an extra source', true).action(
    async (name: string, opts: ApiCommandOptions) => {
      await settings(opts, (s) => {
        if (!s.sources.some((x) => x.name === name)) throw usage(`no extra source ${name}`, '<name>');
        return { ...s, sources: s.sources.filter((x) => x.name !== name) };
      });
    },
  );
}
