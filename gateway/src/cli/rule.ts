import type { Command } from 'commander';
import type { Rule } from '../policy/model.js';
import {
  apiCommand,
  clientFor,
  group,
  list,
  usage,
  type ApiCommandOptions,
  type CliContext,
} from './api-commands.js';
import { asJson, table } from './output.js';

interface RuleOptions extends ApiCommandOptions {
  readonly profile?: boolean;
  readonly action?: string;
  readonly cidr?: string;
  readonly domain?: string;
  readonly toVm?: string;
  readonly special?: string;
  readonly proto?: string;
  readonly ports?: string;
  readonly icmpType?: string;
  readonly expires?: string;
  readonly comment?: string;
  readonly id?: string;
  readonly position?: string;
}

/** A rule's destination as one short word. */
export function describeTarget(to: Rule['to']): string {
  if ('cidr' in to) return to.cidr;
  if ('domain' in to) return `domain ${to.domain}`;
  if ('vm' in to) return `vm ${to.vm}`;
  return to.special;
}

/** Rules as a table, in order. */
export function ruleTable(rules: readonly Rule[]): string {
  return table(rules, [
    ['ID', (r) => r.id],
    ['ACTION', (r) => r.action],
    ['TO', (r) => describeTarget(r.to)],
    ['PROTO', (r) => r.proto ?? 'any'],
    ['PORTS', (r) => r.ports?.join(',') ?? r.icmpType],
    ['EXPIRES', (r) => r.expires],
    ['COMMENT', (r) => r.comment],
  ]);
}

/** `portcullis rule list|add|rm <vm>`; `--profile` works on a custom profile's rules instead. */
export function registerRuleCommands(program: Command, ctx: CliContext): void {
  const rule = group(program, 'rule', "a VM's own rules (before its profile's); first match decides");
  const base = (owner: string, opts: RuleOptions): string =>
    `/${opts.profile ? 'profiles' : 'vms'}/${encodeURIComponent(owner)}/rules`;

  apiCommand(rule, 'list <vm>', "list a VM's rules, in order")
    .option('--profile', 'the argument names a custom profile')
    .action(async (owner: string, opts: RuleOptions) => {
      const rules = await clientFor(opts, ctx).get<Rule[]>(base(owner, opts));
      ctx.io.out(opts.json ? asJson(rules) : ruleTable(rules));
    });

  apiCommand(
    rule,
    'add <vm>',
    'add a rule (example: rule add kid --action drop --cidr 203.0.113.0/24 --proto tcp --ports 80,443)',
    true,
  )
    .option('--profile', 'the argument names a custom profile')
    .requiredOption('--action <action>', 'accept, reject or drop')
    .option('--cidr <prefix>', 'destination address or prefix')
    .option('--domain <name>', 'destination domain (and its subdomains)')
    .option('--to-vm <name>', 'destination VM')
    .option('--special <what>', 'destination: dns or internet')
    .option('--proto <proto>', 'any, tcp, udp or icmp')
    .option('--ports <ports>', 'ports or ranges, comma-separated: 80,443,8000-8100 (tcp or udp)')
    .option('--icmp-type <type>', 'ICMP type name, e.g. echo-request (icmp)')
    .option('--expires <time>', 'ISO 8601 time the rule is removed, e.g. 2026-12-01T00:00:00Z')
    .option('--comment <text>', 'free text')
    .option('--id <id>', 'the rule id (default: generated)')
    .option('--position <n>', 'insert before this index (default: at the end)')
    .action(async (owner: string, opts: RuleOptions) => {
      const targets: Rule['to'][] = [];
      if (opts.cidr !== undefined) targets.push({ cidr: opts.cidr });
      if (opts.domain !== undefined) targets.push({ domain: opts.domain });
      if (opts.toVm !== undefined) targets.push({ vm: opts.toVm });
      if (opts.special !== undefined) targets.push({ special: opts.special as 'dns' | 'internet' });
      const [to] = targets;
      if (targets.length !== 1 || to === undefined) {
        throw usage('give exactly one destination: --cidr, --domain, --to-vm or --special', '--cidr');
      }
      const body: Record<string, unknown> = { action: opts.action, to };
      if (opts.id !== undefined) body.id = opts.id;
      if (opts.proto !== undefined) body.proto = opts.proto;
      if (opts.ports !== undefined) body.ports = list(opts.ports);
      if (opts.icmpType !== undefined) body.icmpType = opts.icmpType;
      if (opts.expires !== undefined) body.expires = opts.expires;
      if (opts.comment !== undefined) body.comment = opts.comment;
      let query = '';
      if (opts.position !== undefined) {
        if (!/^\d+$/.test(opts.position))
          throw usage('--position must be a whole number from 0', '--position');
        query = `?position=${opts.position}`;
      }
      const added = await clientFor(opts, ctx).post<Rule>(`${base(owner, opts)}${query}`, body);
      ctx.io.out(
        opts.json ? asJson(added) : `added rule ${added.id}: ${added.action} ${describeTarget(added.to)}\n`,
      );
    });

  apiCommand(rule, 'rm <vm> <id>', 'remove a rule by id', true)
    .option('--profile', 'the first argument names a custom profile')
    .action(async (owner: string, id: string, opts: RuleOptions) => {
      await clientFor(opts, ctx).delete(`${base(owner, opts)}/${encodeURIComponent(id)}`);
      ctx.io.out(opts.json ? asJson({ removed: id }) : `removed rule ${id}\n`);
    });
}
