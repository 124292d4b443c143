import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { asJson, processIo, type CliIo } from './output.js';

/** The versions in use; `null`: the tool is absent (not installed, or it would not run). */
export interface Versions {
  readonly portcullis: string;
  readonly node: string;
  readonly suricata: string | null;
  readonly nft: string | null;
}

/** Runs a tool and resolves with what it printed (stdout and stderr); rejects when it cannot run. */
export type RunTool = (command: string, args: readonly string[]) => Promise<string>;

/** What `collectVersions` asks its surroundings (tests pass their own). */
export interface VersionSources {
  readonly run: RunTool;
  /** This Portcullis' version. Default: `version` of the project's package.json. */
  readonly portcullis?: string;
  /** Default `process.versions.node`. */
  readonly node?: string;
}

/** How long a tool may take to print its version, in ms. */
const TOOL_TIMEOUT_MS = 5_000;

/** The real runner: the tool from PATH, no shell, killed after 5 s. */
export const runTool: RunTool = (command, args) =>
  new Promise((resolve, reject) => {
    execFile(command, [...args], { timeout: TOOL_TIMEOUT_MS }, (err, stdout, stderr) =>
      err ? reject(err) : resolve(`${stdout}${stderr}`),
    );
  });

/**
 * The version in a tool's banner (`This is Suricata version 7.0.10 RELEASE`,
 * `nftables v1.0.6 (Lester Gooch #5)`): the first dotted number; the first line as
 * printed when there is none; undefined for no output.
 */
export function versionIn(banner: string): string | undefined {
  const found = /\bv?(\d+(?:\.\d+)+(?:[-.~+][0-9A-Za-z.]+)?)/.exec(banner)?.[1];
  return found ?? (banner.trim().split('\n')[0] || undefined);
}

/** Portcullis' version: the package.json named portcullis in this module's folder or above it. */
export function portcullisVersion(from = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'portcullis' && pkg.version) return pkg.version;
    }
    if (dirname(dir) === dir) return 'unknown';
  }
}

/** The versions of Portcullis, Node, Suricata (`suricata -V`) and nft (`nft --version`); absent tools are `null`. */
export async function collectVersions(sources: VersionSources): Promise<Versions> {
  const tool = (command: string, args: readonly string[]): Promise<string | null> =>
    sources.run(command, args).then(
      (out) => versionIn(out) ?? null,
      () => null,
    );
  const [suricata, nft] = await Promise.all([tool('suricata', ['-V']), tool('nft', ['--version'])]);
  return {
    portcullis: sources.portcullis ?? portcullisVersion(),
    node: sources.node ?? process.versions.node,
    suricata,
    nft,
  };
}

/** The versions as aligned `name version` lines; `absent` for a missing tool. */
export function formatVersions(v: Versions): string {
  const rows = Object.entries(v).map(([name, version]) => [name, version ?? 'absent'] as const);
  const width = Math.max(...rows.map(([name]) => name.length));
  return rows.map(([name, version]) => `${name.padEnd(width)}  ${version}\n`).join('');
}

/** `portcullis version [--json]`: the versions of Portcullis and of what it runs with. */
export function registerVersionCommand(
  program: Command,
  io: CliIo = processIo,
  run: RunTool = runTool,
): void {
  program
    .command('version')
    .description('print the versions of Portcullis, Node, Suricata and nft in use (absent tools say so)')
    .option('--json', 'print JSON for machines (an absent tool is null)')
    .action(async (opts: { json?: boolean }) => {
      const versions = await collectVersions({ run });
      io.out(opts.json ? asJson(versions) : formatVersions(versions));
    });
}
