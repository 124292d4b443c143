import { mkdtemp, readdir, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Policy } from '../policy/model.js';
import type { NameLists } from './names.js';
import { PolicyRules, readNameLists } from './policy-rules.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portcullis-policy-rules-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const lists: NameLists = {
  categories: new Map([['adult', ['adult.example']]]),
  services: new Map(),
  doh: [],
  dohAddresses: [],
};

const policy = (ipv4: string, approved?: string): Policy => ({
  vms: [
    {
      name: 'kid',
      mac: '52:54:00:00:00:0a',
      ipv4,
      profile: 'kid',
      ...(approved ? { rules: [{ action: 'accept', to: { domain: approved } }] } : {}),
    },
  ],
  profiles: [],
  schedules: [],
  vpnEndpoints: [],
  updateServers: [],
  ipv6: false,
});

describe('the rule file and datasets kept in step with the policy', () => {
  it('writes them at start, reloads Suricata only when a change alters them, and removes datasets no rule loads', async () => {
    let reloads = 0;
    let current = lists;
    const rules = new PolicyRules({
      dir: join(dir, 'policy'),
      lists: () => Promise.resolve(current),
      reload: () => {
        reloads++;
        return Promise.resolve();
      },
      now: () => Date.parse('2026-12-03T12:00:00Z'),
    });
    await rules.start(policy('10.20.0.10'));
    expect(reloads).toBe(0);
    const text = await readFile(rules.file, 'utf8');
    expect(text).toContain('rejectboth tls 10.20.0.10 any');
    const files = await readdir(join(dir, 'policy'));
    expect(files.filter((f) => f.endsWith('.lst'))).toHaveLength(1);

    await rules.update(policy('10.20.0.10'));
    expect(reloads).toBe(0);
    await rules.update(policy('10.20.0.10', 'adult.example'));
    expect(reloads).toBe(1);
    expect(await readFile(rules.file, 'utf8')).toContain('pass tls 10.20.0.10 any');

    // a bundle switch: new lists, a new dataset; the old one is removed
    current = { ...lists, categories: new Map([['adult', ['adult.example', 'more.example']]]) };
    await rules.reloadLists(policy('10.20.0.10', 'adult.example'));
    expect(reloads).toBe(2);
    const after = (await readdir(join(dir, 'policy'))).filter((f) => f.endsWith('.lst'));
    expect(after).toHaveLength(1);
    expect(after).not.toEqual(files.filter((f) => f.endsWith('.lst')));
    // the bundle switch reloads Suricata itself
    current = lists;
    await rules.reloadLists(policy('10.20.0.10', 'adult.example'), { reload: false });
    expect(reloads).toBe(2);
    expect((await readdir(join(dir, 'policy'))).filter((f) => f.endsWith('.lst'))).toEqual(
      files.filter((f) => f.endsWith('.lst')),
    );
  });

  it('prepares new lists before a bundle switch: datasets written, rules untouched, lists not read again', async () => {
    let reads = 0;
    const rules = new PolicyRules({
      dir: join(dir, 'policy'),
      lists: () => {
        reads++;
        return Promise.resolve(lists);
      },
      reload: () => Promise.resolve(),
      now: () => Date.parse('2026-12-03T12:00:00Z'),
    });
    await rules.start(policy('10.20.0.10'));
    const before = await readFile(rules.file, 'utf8');
    const next = { ...lists, categories: new Map([['adult', ['adult.example', 'new.example']]]) };
    const prepared = await rules.prepareLists(next, policy('10.20.0.10'));
    // the rules in force still load the old dataset; the new one is there beside it
    expect(await readFile(rules.file, 'utf8')).toBe(before);
    const lst = (await readdir(join(dir, 'policy'))).filter((f) => f.endsWith('.lst'));
    expect(lst).toHaveLength(2);
    await rules.reloadLists(policy('10.20.0.10'), { reload: false, prepared });
    expect(reads).toBe(1);
    const after = await readFile(rules.file, 'utf8');
    expect(after).not.toBe(before);
    // the old dataset is gone, the prepared one is what the rules load
    const left = (await readdir(join(dir, 'policy'))).filter((f) => f.endsWith('.lst'));
    expect(left).toHaveLength(1);
    expect(after).toContain(left[0]);
  });
});

describe('the lists as names, from a directory laid out as rules/lists/', () => {
  it('reads categories, services, doh.txt and the DoH address files', async () => {
    await mkdir(join(dir, 'categories'));
    await mkdir(join(dir, 'services'));
    await writeFile(join(dir, 'categories', 'adult.txt'), '# c\nadult.example\n0.0.0.0 hosts.example\n');
    await writeFile(join(dir, 'services', 'tiktok.txt'), '||tiktok.example^\n');
    await writeFile(join(dir, 'doh.txt'), 'dns.google\n');
    await writeFile(join(dir, 'doh-addresses.txt'), '# Google\n8.8.8.8\n');
    const l = await readNameLists(dir, [join(dir, 'doh-addresses.txt')]);
    expect(l.categories.get('adult')).toEqual(['adult.example', 'hosts.example']);
    expect(l.services.get('tiktok')).toEqual(['tiktok.example']);
    expect(l.doh).toEqual(['dns.google']);
    expect(l.dohAddresses).toEqual(['8.8.8.8']);
  });

  it('names the file it cannot read', async () => {
    await expect(readNameLists(dir, [join(dir, 'missing.txt')])).rejects.toMatchObject({
      code: 'DNS_LIST_INVALID',
      message: expect.stringContaining('missing.txt') as unknown,
    });
  });
});
