import type { Command } from 'commander';
import type { Vm } from '../policy/model.js';
import {
  apiCommand,
  clientFor,
  group,
  usage,
  type ApiCommandOptions,
  type CliContext,
} from './api-commands.js';
import { asJson, fields, table } from './output.js';
import { ruleTable } from './rule.js';

interface VmFieldOptions extends ApiCommandOptions {
  readonly mac?: string;
  readonly ipv4?: string;
  readonly ipv6?: string;
  readonly port?: string;
  readonly profile?: string;
  readonly owner?: string;
  readonly notes?: string;
  readonly unset?: string[];
}

const vmPath = (name: string): string => `/vms/${encodeURIComponent(name)}`;

/** `portcullis vm list|show|add|rm|set` and `portcullis quarantine on|off`. */
export function registerVmCommands(program: Command, ctx: CliContext): void {
  const vm = group(program, 'vm', 'guest VMs: identity (port, MAC, addresses) and profile');

  apiCommand(vm, 'list', 'list the VMs').action(async (opts: ApiCommandOptions) => {
    const vms = await clientFor(opts, ctx).get<Vm[]>('/vms');
    ctx.io.out(
      opts.json
        ? asJson(vms)
        : table(vms, [
            ['NAME', (v) => v.name],
            // a layout without per-guest ports has no PORT column
            ...(vms.some((v) => v.port !== undefined) ? [['PORT', (v: Vm) => v.port] as const] : []),
            ['MAC', (v) => v.mac],
            ['IPV4', (v) => v.ipv4],
            ['IPV6', (v) => v.ipv6],
            ['PROFILE', (v) => v.profile],
            ['RULES', (v) => v.rules?.length ?? 0],
            ['STATE', (v) => (v.quarantine ? `quarantined: ${v.quarantine.reason}` : 'ok')],
          ]),
    );
  });

  apiCommand(vm, 'show <name>', 'show one VM with its rules').action(
    async (name: string, opts: ApiCommandOptions) => {
      const v = await clientFor(opts, ctx).get<Vm>(vmPath(name));
      if (opts.json) return ctx.io.out(asJson(v));
      ctx.io.out(
        fields([
          ['name', v.name],
          ['port', v.port],
          ['mac', v.mac],
          ['ipv4', v.ipv4],
          ['ipv6', v.ipv6],
          ['profile', v.profile],
          ['owner', v.owner],
          ['notes', v.notes],
          ['quarantine', v.quarantine ? `${v.quarantine.reason} (since ${v.quarantine.since})` : undefined],
        ]),
      );
      ctx.io.out(`\nrules (first match decides, before the profile's):\n${ruleTable(v.rules ?? [])}`);
    },
  );

  fieldOptions(apiCommand(vm, 'add <name>', 'add a VM', true)).action(
    async (name: string, opts: VmFieldOptions) => {
      const { mac, ipv4, profile } = opts;
      if (mac === undefined) throw usage('a new VM needs its MAC address', '--mac');
      if (ipv4 === undefined) throw usage('a new VM needs its IPv4 address', '--ipv4');
      if (profile === undefined) throw usage('a new VM needs a profile', '--profile');
      const body: Vm = { name, mac, ipv4, profile };
      if (opts.ipv6) body.ipv6 = opts.ipv6;
      if (opts.port) body.port = opts.port;
      if (opts.owner) body.owner = opts.owner;
      if (opts.notes) body.notes = opts.notes;
      const added = await clientFor(opts, ctx).post<Vm>('/vms', body);
      ctx.io.out(
        opts.json
          ? asJson(added)
          : `added VM ${added.name} (${added.port ? `port ${added.port}, ` : ''}${added.mac}, ${added.ipv4}, profile ${added.profile})\n`,
      );
    },
  );

  fieldOptions(apiCommand(vm, 'set <name>', "change a VM's fields", true))
    .option(
      '--unset <field>',
      'remove an optional field: ipv6, port, owner or notes (repeatable)',
      (v: string, p: string[] = []) => [...p, v],
    )
    .action(async (name: string, opts: VmFieldOptions) => {
      const patch: Record<string, string | null> = {};
      for (const key of ['mac', 'ipv4', 'ipv6', 'port', 'profile', 'owner', 'notes'] as const) {
        const value = opts[key];
        if (value !== undefined) patch[key] = value;
      }
      for (const key of opts.unset ?? []) patch[key] = null;
      const updated = await clientFor(opts, ctx).patch<Vm>(vmPath(name), patch);
      ctx.io.out(opts.json ? asJson(updated) : `updated VM ${updated.name}\n`);
    });

  apiCommand(vm, 'rm <name>', 'remove a VM and its rules', true).action(
    async (name: string, opts: ApiCommandOptions) => {
      await clientFor(opts, ctx).delete(vmPath(name));
      ctx.io.out(opts.json ? asJson({ removed: name }) : `removed VM ${name}\n`);
    },
  );

  const quarantine = group(program, 'quarantine', 'isolate a VM: only DNS and update servers stay reachable');
  apiCommand(quarantine, 'on <vm>', 'quarantine a VM')
    .requiredOption('--reason <text>', 'why (kept with the VM and in the audit log)')
    .action(async (name: string, opts: ApiCommandOptions & { reason: string }) => {
      const v = await clientFor(opts, ctx).post<Vm>(`${vmPath(name)}/quarantine`, { reason: opts.reason });
      ctx.io.out(
        opts.json
          ? asJson(v)
          : `VM ${v.name} is quarantined: ${v.quarantine?.reason} (since ${v.quarantine?.since})\n`,
      );
    });
  apiCommand(quarantine, 'off <vm>', 'release a VM from quarantine', true).action(
    async (name: string, opts: ApiCommandOptions) => {
      const v = await clientFor(opts, ctx).delete<Vm>(`${vmPath(name)}/quarantine`);
      ctx.io.out(opts.json ? asJson(v) : `VM ${name} is released from quarantine\n`);
    },
  );
}

function fieldOptions(cmd: Command): Command {
  return cmd
    .option('--mac <mac>', 'MAC address, e.g. 52:54:00:12:34:56')
    .option('--ipv4 <address>', 'the IPv4 address the VM is leased')
    .option('--ipv6 <address>', 'the IPv6 address the VM is leased')
    .option(
      '--port <interface>',
      "the VM's port: the interface its link ends on in the security VM (e.g. g-kid, ens4.12); its MAC and address count only there",
    )
    .option('--profile <name>', 'profile: open, internet-only, work, kid, quarantine or a custom one')
    .option('--owner <name>', 'who the VM belongs to')
    .option('--notes <text>', 'free text');
}
