import { userInfo } from 'node:os';
import type { Command } from 'commander';
import { PortcullisError } from '../errors.js';
import { ApiClient } from './api-client.js';
import { fetchTrusting } from './https-fetch.js';
import { readFileSync } from 'node:fs';
import { processIo, type CliIo } from './output.js';
import { registerAuditCommand } from './audit.js';
import { registerBundleUpdateCommands } from './bundle-update.js';
import { registerCaptureCommands } from './capture.js';
import { registerPolicyIoCommands } from './policy-io.js';
import { registerProfileCommands } from './profile.js';
import { registerRuleCommands } from './rule.js';
import { registerScheduleCommands } from './schedule.js';
import { registerVmCommands } from './vm.js';

/** The API's address when neither --api nor PORTCULLIS_API says otherwise (the service speaks TLS). */
export const DEFAULT_API = 'https://127.0.0.1:8080';

/** What the API commands need from their surroundings (tests pass their own). */
export interface CliContext {
  readonly io: CliIo;
  /** Environment: PORTCULLIS_API, PORTCULLIS_API_TOKEN, PORTCULLIS_API_CA. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Who runs the command, for the audit log; default `cli:<login name>`. */
  readonly actor?: string;
}

/** Options every API command takes. */
export interface ApiCommandOptions {
  readonly api?: string;
  readonly token?: string;
  readonly ca?: string;
  readonly json?: boolean;
  readonly reason?: string;
}

/**
 * Register the commands that talk to the API: `vm`, `quarantine`, `profile`, `rule`,
 * `schedule`, `policy export|import`, `audit` and `capture`.
 */
export function registerApiCommands(
  program: Command,
  ctx: CliContext = { io: processIo, env: process.env },
): void {
  registerVmCommands(program, ctx);
  registerProfileCommands(program, ctx);
  registerRuleCommands(program, ctx);
  registerScheduleCommands(program, ctx);
  registerPolicyIoCommands(program, ctx);
  registerAuditCommand(program, ctx);
  registerBundleUpdateCommands(program, ctx);
  registerCaptureCommands(program, ctx);
}

/** A subcommand with the API options (--api, --token, --json); `mutating` adds --reason. */
export function apiCommand(parent: Command, spec: string, description: string, mutating = false): Command {
  const cmd = parent
    .command(spec)
    .description(description)
    .option('--api <url>', `API address (default: $PORTCULLIS_API or ${DEFAULT_API})`)
    .option(
      '--token <token>',
      'API token (default: $PORTCULLIS_API_TOKEN; make one with portcullis token create)',
    )
    .option(
      '--ca <file>',
      "the service's certificate (PEM) to trust, e.g. its self-signed one (default: $PORTCULLIS_API_CA)",
    )
    .option('--json', 'print JSON for machines');
  if (mutating) cmd.option('--reason <text>', 'why, for the audit log');
  return cmd;
}

/** The group command `name` (an existing one, if another module registered it first). */
export function group(program: Command, name: string, description: string): Command {
  return program.commands.find((c) => c.name() === name) ?? program.command(name).description(description);
}

/** A client for the options of one command. */
export function clientFor(opts: ApiCommandOptions, ctx: CliContext): ApiClient {
  const ca = opts.ca ?? ctx.env.PORTCULLIS_API_CA;
  return new ApiClient({
    baseUrl: opts.api ?? ctx.env.PORTCULLIS_API ?? DEFAULT_API,
    token: opts.token ?? ctx.env.PORTCULLIS_API_TOKEN,
    actor: ctx.actor ?? localActor(),
    reason: opts.reason,
    ...(ca ? { fetch: fetchTrusting(readCa(ca)) } : {}),
  });
}

/** Who runs the command, for the audit log: `cli:<login name>`. */
export function localActor(): string {
  try {
    return `cli:${userInfo()
      .username.replace(/[^A-Za-z0-9._@-]/g, '_')
      .slice(0, 50)}`;
  } catch {
    return 'cli';
  }
}

/** `a,b, c` as `['a', 'b', 'c']`. */
export function list(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** For repeatable options: collect every value. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** A usage error found before asking the API, named by the option at fault. */
export function usage(message: string, option: string): PortcullisError {
  return new PortcullisError('REQUEST_INVALID', `${message} (at ${option})`, { path: option });
}

/** The PEM file given as the certificate to trust. */
function readCa(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (cause) {
    throw new PortcullisError('REQUEST_INVALID', `cannot read the certificate ${file} (at --ca)`, {
      cause,
      path: '--ca',
    });
  }
}
