import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { parse } from 'yaml';
import type { Profile } from '../policy/model.js';
import {
  apiCommand,
  clientFor,
  group,
  list,
  usage,
  type ApiCommandOptions,
  type CliContext,
} from './api-commands.js';
import { asJson, fields, table } from './output.js';
import { ruleTable } from './rule.js';

type ProfileView = Profile & { builtin: boolean };

interface ProfileOptions extends ApiCommandOptions {
  readonly file?: string;
  readonly internet?: string;
  readonly ipsMode: string;
  readonly ipsFailure: string;
  readonly reach?: string;
  readonly vpn?: boolean;
  readonly isolated?: boolean;
  readonly allowDomains?: string;
  readonly description?: string;
}

const profilePath = (name: string): string => `/profiles/${encodeURIComponent(name)}`;

/** `portcullis profile list|show|add|rm`. */
export function registerProfileCommands(program: Command, ctx: CliContext): void {
  const profile = group(program, 'profile', 'profiles: what a VM may reach (built-ins are read-only)');

  apiCommand(profile, 'list', 'list built-in and custom profiles').action(async (opts: ApiCommandOptions) => {
    const profiles = await clientFor(opts, ctx).get<ProfileView[]>('/profiles');
    ctx.io.out(
      opts.json
        ? asJson(profiles)
        : table(profiles, [
            ['NAME', (p) => p.name],
            ['KIND', (p) => (p.builtin ? 'built-in' : 'custom')],
            ['INTERNET', (p) => p.internet],
            ['IPS', (p) => `${p.ips.mode}/${p.ips.failure}`],
            ['RULES', (p) => p.rules.length],
            ['DESCRIPTION', (p) => p.description],
          ]),
    );
  });

  apiCommand(profile, 'show <name>', 'show a profile with its rules').action(
    async (name: string, opts: ApiCommandOptions) => {
      const p = await clientFor(opts, ctx).get<ProfileView>(profilePath(name));
      if (opts.json) return ctx.io.out(asJson(p));
      ctx.io.out(
        fields([
          ['name', p.name],
          ['kind', p.builtin ? 'built-in (read-only)' : 'custom'],
          ['description', p.description],
          ['internet', p.internet],
          ['ips', `${p.ips.mode}, ${p.ips.failure}`],
          ['reach', p.reach.join(', ')],
          ['vpn', p.vpn],
          ['isolated', p.isolated],
          ['allowDomains', p.allowDomains?.join(', ')],
          ['dns', p.dns],
        ]),
      );
      ctx.io.out(`\nrules:\n${ruleTable(p.rules)}`);
    },
  );

  apiCommand(profile, 'add <name>', 'add a custom profile, from options or from a YAML/JSON file', true)
    .option('--file <path>', 'the profile as YAML or JSON (its name is replaced by <name>)')
    .option('--internet <access>', 'open, deny or allowlist-only')
    .option('--ips-mode <mode>', 'off, ids or ips', 'ids')
    .option('--ips-failure <mode>', 'fail-open or fail-closed', 'fail-open')
    .option('--reach <vms>', 'VMs this one may connect to, comma-separated')
    .option('--vpn', 'may reach the corporate VPN endpoints')
    .option('--isolated', 'quarantine semantics: only DNS and update servers')
    .option('--allow-domains <names>', 'allowed domains for allowlist-only, comma-separated')
    .option('--description <text>', 'free text')
    .action(async (name: string, opts: ProfileOptions) => {
      let body: Profile;
      if (opts.file !== undefined) {
        body = { ...(parse(await readFile(opts.file, 'utf8')) as Profile), name };
      } else {
        if (opts.internet === undefined)
          throw usage('say what internet access the profile gives, or give --file', '--internet');
        body = {
          name,
          internet: opts.internet as Profile['internet'],
          rules: [],
          reach: opts.reach ? list(opts.reach) : [],
          ips: {
            mode: opts.ipsMode as Profile['ips']['mode'],
            failure: opts.ipsFailure as Profile['ips']['failure'],
          },
        };
        if (opts.vpn) body.vpn = true;
        if (opts.isolated) body.isolated = true;
        if (opts.allowDomains) body.allowDomains = list(opts.allowDomains);
        if (opts.description) body.description = opts.description;
      }
      const added = await clientFor(opts, ctx).post<ProfileView>('/profiles', body);
      ctx.io.out(opts.json ? asJson(added) : `added profile ${added.name}\n`);
    });

  apiCommand(profile, 'rm <name>', 'remove a custom profile no VM uses', true).action(
    async (name: string, opts: ApiCommandOptions) => {
      await clientFor(opts, ctx).delete(profilePath(name));
      ctx.io.out(opts.json ? asJson({ removed: name }) : `removed profile ${name}\n`);
    },
  );
}
