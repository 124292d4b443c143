import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { PortcullisError } from '../errors.js';
import { makePolicy } from '../store/test-fixtures.js';
import { makeTestApi, type TestApi } from '../http/test-app.js';
import { inProcessCli } from './test-cli.js';
import { parseWindow } from './schedule.js';

const run = promisify(execFile);

/** Runs CLI commands in-process against a real API listening on 127.0.0.1. */
describe('the API commands', () => {
  let t: TestApi;
  let api: string;
  let dir: string;

  const cli = inProcessCli(() => api);

  async function cliError(...args: string[]): Promise<PortcullisError> {
    try {
      await cli(...args);
    } catch (err) {
      if (err instanceof PortcullisError) return err;
      throw err;
    }
    throw new Error('expected the command to fail');
  }

  beforeAll(async () => {
    t = await makeTestApi({ token: 'tok' });
    api = await t.app.listen({ host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => {
    await t.close();
  });
  beforeEach(async () => {
    await t.policy.importPolicy(makePolicy(), { actor: 'reset' });
    dir = mkdtempSync(join(tmpdir(), 'portcullis-cli-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  describe('vm', () => {
    it('lists VMs as a table and as JSON', async () => {
      const text = await cli('vm', 'list');
      expect(text.split('\n')[0]).toMatch(/^NAME\s+MAC\s+IPV4\s+IPV6\s+PROFILE\s+RULES\s+STATE$/);
      expect(text).toMatch(/kid\s+52:54:00:00:00:01\s+10\.20\.0\.11\s+fd00::11\s+kid\s+2\s+ok/);
      expect(text).toMatch(/work .* quarantined: ET MALWARE beacon/);
      expect(JSON.parse(await cli('vm', 'list', '--json'))).toEqual(makePolicy().vms);
    });

    it('shows a VM with its rules', async () => {
      const text = await cli('vm', 'show', 'kid');
      expect(text).toMatch(/^name: +kid$/m);
      expect(text).toMatch(/r1\s+drop\s+203\.0\.113\.0\/24\s+tcp\s+80,443/);
    });

    it('adds, changes and removes a VM, with the token', async () => {
      expect(
        await cli(
          'vm',
          'add',
          'browse',
          '--mac',
          '52:54:00:00:00:03',
          '--ipv4',
          '10.20.0.13',
          '--profile',
          'internet-only',
          '--token',
          'tok',
          '--reason',
          'new VM',
        ),
      ).toBe('added VM browse (52:54:00:00:00:03, 10.20.0.13, profile internet-only)\n');
      expect(t.store.audit.list({ limit: 1 }).items[0]).toMatchObject({
        actor: 'api:cli:test',
        reason: 'new VM',
      });
      await cli('vm', 'set', 'browse', '--notes', 'for Bob', '--profile', 'open', '--token', 'tok');
      expect(t.policy.getVm('browse')).toMatchObject({ notes: 'for Bob', profile: 'open' });
      await cli('vm', 'set', 'browse', '--unset', 'notes', '--token', 'tok');
      expect(t.policy.getVm('browse').notes).toBeUndefined();
      expect(await cli('vm', 'rm', 'browse', '--token', 'tok')).toBe('removed VM browse\n');
    });

    it('adds a VM on its port, shows the port, and moves it to another', async () => {
      expect(
        await cli(
          'vm',
          'add',
          'browse',
          '--port',
          'g-browse',
          '--mac',
          '52:54:00:00:00:03',
          '--ipv4',
          '10.20.0.13',
          '--profile',
          'internet-only',
          '--token',
          'tok',
        ),
      ).toBe('added VM browse (port g-browse, 52:54:00:00:00:03, 10.20.0.13, profile internet-only)\n');
      const list = await cli('vm', 'list');
      expect(list.split('\n')[0]).toMatch(/^NAME\s+PORT\s+MAC\s+IPV4/);
      expect(list).toMatch(/browse\s+g-browse\s+52:54:00:00:00:03/);
      expect(await cli('vm', 'show', 'browse')).toMatch(/^port: +g-browse$/m);
      await cli('vm', 'set', 'browse', '--port', 'g-other', '--token', 'tok');
      expect(t.policy.getVm('browse').port).toBe('g-other');
      expect(t.store.audit.list({ limit: 1 }).items[0]).toMatchObject({ action: 'vm.update' });
      await cli('vm', 'set', 'browse', '--unset', 'port', '--token', 'tok');
      expect(t.policy.getVm('browse').port).toBeUndefined();
    });

    it('reports the API error with code, message and path', async () => {
      const noToken = await cliError('vm', 'rm', 'kid');
      expect(noToken.code).toBe('UNAUTHORIZED');
      const dup = await cliError(
        'vm',
        'add',
        'x',
        '--mac',
        '52:54:00:00:00:01',
        '--ipv4',
        '10.20.0.99',
        '--profile',
        'open',
        '--token',
        'tok',
      );
      expect(dup.code).toBe('POLICY_INVALID');
      expect(dup.path).toBe('/body/mac');
      expect(dup.message).toContain('/body/mac: MAC 52:54:00:00:00:01 is already used by VM "kid"');
      const unknown = await cliError('vm', 'show', 'ghost');
      expect(unknown.code).toBe('VM_NOT_FOUND');
      expect(unknown.message).toBe('no VM named "ghost" (at /params/name)');
      const missing = await cliError('vm', 'add', 'x', '--ipv4', '10.20.0.99', '--profile', 'open');
      expect(missing.message).toMatch(/MAC address \(at --mac\)/);
    });

    it('reports an API it cannot reach', async () => {
      const err = await cliError('vm', 'list', '--api', 'http://127.0.0.1:1');
      expect(err.code).toBe('API_UNREACHABLE');
      expect(err.message).toMatch(/cannot reach the API at http:\/\/127\.0\.0\.1:1\/api\/v1/);
    });
  });

  describe('quarantine', () => {
    it('quarantines and releases', async () => {
      expect(await cli('quarantine', 'on', 'kid', '--reason', 'beaconing', '--token', 'tok')).toMatch(
        /^VM kid is quarantined: beaconing/,
      );
      expect(t.policy.getVm('kid').quarantine?.reason).toBe('beaconing');
      expect(await cli('quarantine', 'off', 'kid', '--token', 'tok')).toBe(
        'VM kid is released from quarantine\n',
      );
      expect(t.policy.getVm('kid').quarantine).toBeUndefined();
    });

    it('needs a reason', async () => {
      await expect(cli('quarantine', 'on', 'kid', '--token', 'tok')).rejects.toThrow(
        /required option '--reason <text>'/,
      );
    });
  });

  describe('rule', () => {
    it('adds, lists and removes rules', async () => {
      const added = await cli(
        'rule',
        'add',
        'kid',
        '--action',
        'drop',
        '--cidr',
        '198.51.100.0/24',
        '--proto',
        'tcp',
        '--ports',
        '80,443',
        '--expires',
        '2026-12-01T00:00:00Z',
        '--token',
        'tok',
      );
      expect(added).toMatch(/^added rule (\S+): drop 198\.51\.100\.0\/24\n$/);
      const id = /added rule (\S+):/.exec(added)![1]!;
      expect(t.policy.getRule({ vm: 'kid' }, id)).toMatchObject({
        proto: 'tcp',
        ports: ['80', '443'],
        expires: '2026-12-01T00:00:00Z',
      });
      expect(await cli('rule', 'list', 'kid')).toMatch(
        new RegExp(`${id}\\s+drop\\s+198\\.51\\.100\\.0/24\\s+tcp\\s+80,443\\s+2026-12-01T00:00:00Z`),
      );
      await cli(
        'rule',
        'add',
        'kid',
        '--action',
        'accept',
        '--special',
        'dns',
        '--id',
        'dns-first',
        '--position',
        '0',
        '--token',
        'tok',
      );
      expect(t.policy.listRules({ vm: 'kid' })[0]?.id).toBe('dns-first');
      expect(await cli('rule', 'rm', 'kid', id, '--token', 'tok')).toBe(`removed rule ${id}\n`);
      await cli(
        'rule',
        'add',
        'office',
        '--profile',
        '--action',
        'drop',
        '--domain',
        'ads.example',
        '--token',
        'tok',
      );
      expect(JSON.parse(await cli('rule', 'list', 'office', '--profile', '--json'))).toHaveLength(2);
    });

    it('names the field of a bad rule', async () => {
      const cidr = await cliError(
        'rule',
        'add',
        'kid',
        '--action',
        'drop',
        '--cidr',
        '198.51.100.1/24',
        '--token',
        'tok',
      );
      expect(cidr.path).toBe('/body/to/cidr');
      expect(cidr.message).toMatch(/host bits set/);
      const two = await cliError(
        'rule',
        'add',
        'kid',
        '--action',
        'drop',
        '--cidr',
        '10.0.0.0/8',
        '--domain',
        'x.example',
        '--token',
        'tok',
      );
      expect(two.message).toMatch(/exactly one destination/);
      const gone = await cliError('rule', 'rm', 'kid', 'nope', '--token', 'tok');
      expect(gone.code).toBe('RULE_NOT_FOUND');
    });
  });

  describe('profile', () => {
    it('lists, shows, adds and removes profiles', async () => {
      expect(await cli('profile', 'list')).toMatch(/quarantine\s+built-in\s+deny\s+off\/fail-open/);
      expect(await cli('profile', 'show', 'office')).toMatch(
        /^allowDomains: +corp\.example, \*\.corp\.example$/m,
      );
      await cli(
        'profile',
        'add',
        'gaming',
        '--internet',
        'open',
        '--ips-mode',
        'ips',
        '--ips-failure',
        'fail-closed',
        '--reach',
        'kid',
        '--token',
        'tok',
      );
      expect(t.policy.getProfile('gaming')).toMatchObject({
        internet: 'open',
        ips: { mode: 'ips', failure: 'fail-closed' },
        reach: ['kid'],
      });
      const file = join(dir, 'p.yaml');
      writeFileSync(
        file,
        'name: ignored\ninternet: allowlist-only\nrules: []\nreach: []\nips: { mode: ids, failure: fail-open }\nallowDomains: [school.example]\n',
      );
      await cli('profile', 'add', 'school', '--file', file, '--token', 'tok');
      expect(t.policy.getProfile('school').allowDomains).toEqual(['school.example']);
      expect(await cli('profile', 'rm', 'gaming', '--token', 'tok')).toBe('removed profile gaming\n');
      expect((await cliError('profile', 'rm', 'kid', '--token', 'tok')).code).toBe('CONFLICT');
    });
  });

  describe('schedule', () => {
    it('parses windows', () => {
      expect(parseWindow('mon-fri 21:00-07:00')).toEqual({
        days: ['mon', 'tue', 'wed', 'thu', 'fri'],
        start: '21:00',
        end: '07:00',
      });
      expect(parseWindow('weekend 10:00-12:00').days).toEqual(['sat', 'sun']);
      expect(parseWindow('sat-mon,wed 10:00-12:00').days).toEqual(['mon', 'wed', 'sat', 'sun']);
      expect(() => parseWindow('someday 10:00-12:00')).toThrow(/not a day/);
      expect(() => parseWindow('mon 10:00')).toThrow(/not a window/);
    });

    it('adds, lists and removes schedules', async () => {
      await cli(
        'schedule',
        'add',
        'school',
        '--vms',
        'kid',
        '--mode',
        'allowlist-only',
        '--window',
        'mon-fri 08:00-13:00',
        '--window',
        'sat 09:00-10:00',
        '--timezone',
        'Europe/Berlin',
        '--token',
        'tok',
      );
      expect(t.policy.getSchedule('school').windows).toHaveLength(2);
      expect(await cli('schedule', 'list')).toMatch(
        /school\s+kid\s+allowlist-only\s+Europe\/Berlin\s+mon,tue,wed,thu,fri 08:00-13:00; sat 09:00-10:00\s+true/,
      );
      const bad = await cliError(
        'schedule',
        'add',
        'x',
        '--vms',
        'ghost',
        '--mode',
        'deny',
        '--window',
        'daily 21:00-07:00',
        '--token',
        'tok',
      );
      expect(bad.path).toBe('/body/vms/0');
      expect(await cli('schedule', 'rm', 'school', '--token', 'tok')).toBe('removed schedule school\n');
    });
  });

  describe('policy', () => {
    it('exports YAML and JSON, to stdout or a file', async () => {
      const yaml = await cli('policy', 'export');
      expect(yaml).toMatch(/^# Portcullis policy, exported/);
      expect(JSON.parse(await cli('policy', 'export', '--format', 'json'))).toEqual(makePolicy());
      const file = join(dir, 'policy.yaml');
      expect(await cli('policy', 'export', '--file', file)).toBe(`wrote the policy to ${file}\n`);
      expect(readFileSync(file, 'utf8')).toBe(yaml);
    });

    it('imports a file as one change, or reports where it is wrong', async () => {
      const file = join(dir, 'policy.yaml');
      await cli('policy', 'export', '--file', file);
      writeFileSync(file, readFileSync(file, 'utf8').replace('ipv6: true', 'ipv6: false'));
      expect(await cli('policy', 'import', file, '--token', 'tok')).toBe(
        `imported ${file}: 2 VMs, 1 custom profiles, 1 schedules\n`,
      );
      expect(t.policy.current().ipv6).toBe(false);
      writeFileSync(file, readFileSync(file, 'utf8').replace('203.0.113.0/24', '203.0.113.1/24'));
      const err = await cliError('policy', 'import', file, '--token', 'tok');
      expect(err.code).toBe('POLICY_INVALID');
      expect(err.path).toBe('/body/vms/0/rules/0/to/cidr');
      expect(err.message).toMatch(/host bits set.*\(line \d+, column \d+\)/);
      const json = join(dir, 'policy.json');
      writeFileSync(json, JSON.stringify(makePolicy()));
      await cli('policy', 'import', json, '--token', 'tok');
      expect(t.policy.current()).toEqual(makePolicy());
    });
  });

  describe('audit', () => {
    it('shows the newest entries and how to page', async () => {
      await cli('quarantine', 'on', 'kid', '--reason', 'test', '--token', 'tok');
      const text = await cli('audit', '--limit', '1');
      expect(text).toMatch(/^ID\s+AT\s+ACTOR\s+ACTION\s+TARGET\s+REASON$/m);
      expect(text).toMatch(/api:cli:test\s+vm\.quarantine\s+vm\/kid\s+test/);
      expect(text).toMatch(/\(more: --before \d+\)/);
      expect(JSON.parse(await cli('audit', '--json', '--target', 'vm/kid')).items.length).toBeGreaterThan(0);
    });
  });

  describe('the portcullis command', () => {
    const bin = resolve(import.meta.dirname, '../../bin/portcullis');

    it('prints the table and exits 0', async () => {
      const { stdout } = await run(bin, ['vm', 'list', '--api', api], { timeout: 60_000 });
      expect(stdout).toMatch(/^NAME\s+MAC/);
    }, 60_000);

    it('prints the code, message and path and exits 1', async () => {
      const err = await run(bin, ['vm', 'show', 'ghost', '--api', api], { timeout: 60_000 }).then(
        () => undefined,
        (e: { code: number; stderr: string }) => e,
      );
      expect(err?.code).toBe(1);
      expect(err?.stderr).toBe('portcullis: VM_NOT_FOUND: no VM named "ghost" (at /params/name)\n');
    }, 60_000);
  });
});
