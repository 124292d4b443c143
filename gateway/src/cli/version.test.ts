import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import type { CliIo } from './output.js';
import {
  collectVersions,
  formatVersions,
  portcullisVersion,
  registerVersionCommand,
  versionIn,
  type RunTool,
} from './version.js';

/** A PATH with the given tools: each prints its banner; any other command is not found. */
function toolsOnPath(banners: Record<string, string>): RunTool & { asked: string[] } {
  const asked: string[] = [];
  const run = async (command: string, args: readonly string[]): Promise<string> => {
    asked.push([command, ...args].join(' '));
    const banner = banners[command];
    if (banner === undefined) throw Object.assign(new Error(`spawn ${command} ENOENT`), { code: 'ENOENT' });
    return banner;
  };
  return Object.assign(run, { asked });
}

const BANNERS = {
  suricata: 'This is Suricata version 7.0.10 RELEASE\n',
  nft: 'nftables v1.0.6 (Lester Gooch #5)\n',
};

/** Runs `portcullis <args>` with the version command only, capturing stdout. */
async function runCli(args: string[], run: RunTool): Promise<string> {
  let out = '';
  const io: CliIo = { out: (t) => void (out += t), err: () => undefined };
  const program = new Command('portcullis').exitOverride();
  registerVersionCommand(program, io, run);
  await program.parseAsync(['node', 'portcullis', ...args]);
  return out;
}

describe('versionIn', () => {
  it("reads the version from Suricata's and nft's banners", () => {
    expect(versionIn(BANNERS.suricata)).toBe('7.0.10');
    expect(versionIn(BANNERS.nft)).toBe('1.0.6');
    expect(versionIn('This is Suricata version 8.0.0-beta1 RELEASE')).toBe('8.0.0-beta1');
  });

  it('keeps the first line of a banner without a version, and nothing of no output', () => {
    expect(versionIn('custom build\nmore')).toBe('custom build');
    expect(versionIn('  \n')).toBeUndefined();
  });
});

describe('collectVersions', () => {
  it("reports Portcullis' package version, Node's and the tools' versions", async () => {
    const run = toolsOnPath(BANNERS);
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    expect(await collectVersions({ run })).toEqual({
      portcullis: pkg.version,
      node: process.versions.node,
      suricata: '7.0.10',
      nft: '1.0.6',
    });
    expect(run.asked.sort()).toEqual(['nft --version', 'suricata -V']);
  });

  it('reports a missing tool as absent (null) instead of failing', async () => {
    const versions = await collectVersions({ run: toolsOnPath({ nft: BANNERS.nft }) });
    expect(versions.suricata).toBeNull();
    expect(versions.nft).toBe('1.0.6');
  });

  it('reports a tool that fails to run as absent too', async () => {
    const run: RunTool = async () => {
      throw new Error('Command failed: suricata -V (exit 1)');
    };
    expect(await collectVersions({ run, portcullis: '9.9.9', node: '24.0.0' })).toEqual({
      portcullis: '9.9.9',
      node: '24.0.0',
      suricata: null,
      nft: null,
    });
  });
});

describe('portcullisVersion', () => {
  it('finds the package.json named portcullis above a folder', () => {
    expect(portcullisVersion(new URL('.', import.meta.url).pathname)).toMatch(/^\d+\.\d+\.\d+/);
  });

  it("says unknown where there is none (the filesystem's root)", () => {
    expect(portcullisVersion('/')).toBe('unknown');
  });
});

describe('portcullis version', () => {
  it('prints one aligned line per part, "absent" for a missing tool', async () => {
    const out = await runCli(['version'], toolsOnPath({ nft: BANNERS.nft }));
    expect(out.split('\n')).toEqual([
      expect.stringMatching(/^portcullis {2}\d+\.\d+\.\d+/),
      `node        ${process.versions.node}`,
      'suricata    absent',
      'nft         1.0.6',
      '',
    ]);
  });

  it('prints JSON with --json, an absent tool as null', async () => {
    const out = await runCli(['version', '--json'], toolsOnPath({ suricata: BANNERS.suricata }));
    expect(JSON.parse(out)).toMatchObject({ node: process.versions.node, suricata: '7.0.10', nft: null });
  });
});

describe('formatVersions', () => {
  it('pads names to the longest', () => {
    expect(formatVersions({ portcullis: '1.0.0', node: '24.1.0', suricata: null, nft: '1.0.6' })).toBe(
      'portcullis  1.0.0\nnode        24.1.0\nsuricata    absent\nnft         1.0.6\n',
    );
  });
});
