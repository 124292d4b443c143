import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { parseKey } from '../../../rules/src/keys.js';
import { registerBundleCommands } from './bundle.js';

const dir = mkdtempSync(join(tmpdir(), 'tu-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

/** Run `portcullis bundle …` in-process; its JSON output. */
async function run(...args: string[]): Promise<Record<string, unknown>> {
  const program = new Command('portcullis').exitOverride();
  registerBundleCommands(program);
  let out = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  });
  await program.parseAsync(['node', 'portcullis', 'bundle', ...args]);
  vi.restoreAllMocks();
  return JSON.parse(out) as Record<string, unknown>;
}

const k = (name: string) => join(dir, name);
const repo = join(dir, 'repo');

describe('portcullis bundle (the README flow)', () => {
  it('keygen, init 2-of-3, build, publish, refresh, rotate-key', async () => {
    for (const name of ['root-1', 'root-2', 'root-3', 'targets', 'snapshot', 'timestamp', 'targets-2']) {
      const r = await run('keygen', k(name));
      expect(r.keyid).toMatch(/^[0-9a-f]{64}$/);
    }
    expect(statSync(`${k('root-1')}.key`).mode & 0o777).toBe(0o600);
    await expect(run('keygen', k('root-1'))).rejects.toMatchObject({ code: 'BUNDLE_INVALID' });

    const init = await run(
      'init',
      '--repo',
      repo,
      '--root-key',
      `${k('root-1')}.key`,
      '--root-key',
      `${k('root-2')}.key`,
      '--root-key',
      `${k('root-3')}.pub`,
      '--root-threshold',
      '2',
      '--targets-key',
      `${k('targets')}.key`,
      '--snapshot-key',
      `${k('snapshot')}.key`,
      '--timestamp-key',
      `${k('timestamp')}.key`,
      '--expires',
      'timestamp=1d',
    );
    expect(init.rootFile).toBe(join(repo, 'metadata', '1.root.json'));
    const root = JSON.parse(readFileSync(join(repo, 'metadata', '1.root.json'), 'utf8'));
    expect(root.signed.roles.root.threshold).toBe(2);
    expect(root.signed.roles.root.keyids).toHaveLength(3);
    expect(root.signatures).toHaveLength(2);

    const out = join(dir, 'b.tar.gz');
    const built = await run('build', '--version', '42', '--out', out);
    expect(built).toMatchObject({ name: 'portcullis-default', channel: 'stable', version: 42, out });

    const online = [
      '--key',
      `${k('targets')}.key`,
      '--key',
      `${k('snapshot')}.key`,
      '--key',
      `${k('timestamp')}.key`,
    ];
    const pub = await run('publish', '--repo', repo, '--bundle', out, ...online);
    expect(pub).toMatchObject({
      version: 42,
      targetPath: 'portcullis-default/stable.tar.gz',
      timestampVersion: 2,
    });
    await expect(run('publish', '--repo', repo, '--bundle', out, ...online)).rejects.toMatchObject({
      code: 'BUNDLE_ROLLBACK',
    });
    await expect(run('publish', '--repo', repo, '--key', `${k('snapshot')}.pub`)).rejects.toMatchObject({
      code: 'BUNDLE_INVALID',
      message: expect.stringContaining('private key'),
    });
    expect(
      await run('publish', '--repo', repo, '--key', `${k('snapshot')}.key`, '--key', `${k('timestamp')}.key`),
    ).toEqual({ targetsVersion: 2, snapshotVersion: 3, timestampVersion: 3 });

    const rot = await run(
      'rotate-key',
      '--repo',
      repo,
      '--role',
      'targets',
      '--add',
      `${k('targets-2')}.pub`,
      '--remove',
      `${k('targets')}.pub`,
      '--key',
      `${k('root-1')}.key`,
      '--key',
      `${k('root-2')}.key`,
      '--key',
      `${k('targets-2')}.key`,
      '--key',
      `${k('snapshot')}.key`,
      '--key',
      `${k('timestamp')}.key`,
    );
    expect(rot.rootVersion).toBe(2);
    const keyid2 = parseKey(readFileSync(`${k('targets-2')}.pub`, 'utf8'), 'targets-2').keyid;
    const root2 = JSON.parse(readFileSync(join(repo, 'metadata', '2.root.json'), 'utf8'));
    expect(root2.signed.roles.targets.keyids).toEqual([keyid2]);
  });
});
