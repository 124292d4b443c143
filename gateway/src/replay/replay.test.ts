import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isPortcullisError } from '../errors.js';
import { LeaseTable } from '../suricata/eve/leases.js';
import { loadAlertActions, loadLeases, summariseEveFile } from './replay.js';
import { suricataArgs } from './suricata.js';

const fixture = fileURLToPath(
  new URL('../../../test/fixtures/eve/suricata-7.0.10.eve.jsonl', import.meta.url),
);

describe('summariseEveFile', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'replay-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('counts events, alerts and drops of real Suricata output and writes the events back unchanged', async () => {
    const eventsFile = join(dir, 'events.jsonl');
    const summary = await summariseEveFile(fixture, { eventsFile, actions: {} });
    const original = await readFile(fixture, 'utf8');
    expect(await readFile(eventsFile, 'utf8')).toBe(original);
    const lines = original.trim().split('\n');
    expect(Object.values(summary.events).reduce((a, b) => a + b, 0)).toBe(lines.length);
    expect(summary.events.alert).toBe(lines.filter((l) => l.includes('"event_type":"alert"')).length);
    expect(summary.parse_errors).toBe(0);
    expect(summary.alerts.total).toBe(summary.events.alert);
    expect(summary.drops).toEqual({ total: 1, by_sid: { '2': 1 } });
    expect(summary.recorded).toBe(summary.alerts.total);
    expect(summary.actions).toEqual([]);
  });

  it('lists what the profile would do: the severity-1 alert of a leased VM blocks its remote host', async () => {
    const leases = new LeaseTable();
    leases.add({ vm: 'mail', address: '88.191.140.111' });
    // the fixture mixes captures from many years; decisions run on event time, so take this capture alone
    const file = join(dir, 'eve.json');
    await writeFile(
      file,
      (await readFile(fixture, 'utf8'))
        .split('\n')
        .filter((l) => l.includes('"SMTP EHLO"') || l.includes('"event_type":"smtp"'))
        .join('\n'),
    );
    const summary = await summariseEveFile(file, {
      resolver: leases,
      actions: { block: { maxSeverity: 1, duration: 3600 } },
    });
    expect(summary.actions).toEqual([
      {
        kind: 'block',
        vm: 'mail',
        remote: '188.125.69.79',
        until: Date.parse('2013-11-26T15:30:20.275Z') + 3_600_000,
        seconds: 3600,
        sid: 1,
        reason: 'alert 1:1 "SMTP EHLO" (severity 1) from VM mail',
        reassert: false,
      },
    ]);
  });

  it('maps private addresses to the VM "replay" by default', async () => {
    const summary = await summariseEveFile(fixture, { actions: { block: { maxSeverity: 3, duration: 60 } } });
    const blocks = summary.actions.filter((a) => a.kind === 'block');
    expect(blocks.length).toBeGreaterThan(0);
    for (const b of blocks) expect(b).toMatchObject({ vm: 'replay' });
  });

  it('counts bad lines as parse errors and reads on', async () => {
    const file = join(dir, 'eve.json');
    const good = (await readFile(fixture, 'utf8')).split('\n')[1] as string;
    await writeFile(file, `${good}\nnot json\n{"event_type":"alert"}\n${good}\n{"partial":`);
    const reasons: string[] = [];
    const summary = await summariseEveFile(file, { onParseError: (e) => reasons.push(e.reason) });
    expect(summary.parse_errors).toBe(3);
    expect(reasons).toEqual(['not-json', 'bad-envelope', 'not-json']);
    expect(Object.values(summary.events).reduce((a, b) => a + b, 0)).toBe(2);
  });

  it('fails with REPLAY_FAILED on a missing file', async () => {
    const err = await summariseEveFile(join(dir, 'nope.json')).catch((e: unknown) => e);
    expect(isPortcullisError(err, 'REPLAY_FAILED')).toBe(true);
  });
});

describe('loadAlertActions', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'replay-profile-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('knows the built-in profiles', async () => {
    expect((await loadAlertActions('kid')).block?.maxSeverity).toBe(2);
  });

  it('reads alert actions, or a profile holding them, from a file', async () => {
    const a = join(dir, 'a.json');
    await writeFile(a, JSON.stringify({ block: { maxSeverity: 3, duration: 5 } }));
    expect(await loadAlertActions(a)).toEqual({ block: { maxSeverity: 3, duration: 5 } });
    const p = join(dir, 'p.json');
    await writeFile(p, JSON.stringify({ name: 'x', alertActions: { notify: { url: 'https://h/x' } } }));
    expect(await loadAlertActions(p)).toEqual({ notify: { url: 'https://h/x' } });
  });

  it('says what is wrong', async () => {
    const bad = join(dir, 'bad.json');
    await writeFile(bad, JSON.stringify({ block: { maxSeverity: 1 } }));
    await expect(loadAlertActions(bad)).rejects.toThrow(/block\/duration/);
    await expect(loadAlertActions('no-such-profile')).rejects.toThrow(/neither a built-in profile/);
  });
});

describe('loadLeases', () => {
  it('reads leases with optional intervals', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'replay-leases-'));
    const file = join(dir, 'leases.json');
    await writeFile(
      file,
      JSON.stringify([
        { vm: 'kid', address: '10.0.0.2', from: '2024-01-01T00:00:00Z', until: '2024-01-02T00:00:00Z' },
        { vm: 'work', address: '2001:db8::3' },
      ]),
    );
    const t = await loadLeases(file);
    expect(t.vmAt('10.0.0.2', Date.parse('2024-01-01T12:00:00Z'))).toBe('kid');
    expect(t.vmAt('10.0.0.2', Date.parse('2024-01-03T00:00:00Z'))).toBeUndefined();
    expect(t.vmAt('2001:0db8:0000:0000:0000:0000:0000:0003', 0)).toBe('work');
    await writeFile(file, JSON.stringify([{ vm: 'kid', address: '10.0.0.2', from: 'soon' }]));
    await expect(loadLeases(file)).rejects.toThrow(/"from" must be an ISO 8601 date/);
    await rm(dir, { recursive: true, force: true });
  });
});

describe('suricataArgs', () => {
  it('is the suricata-verify command', () => {
    expect(
      suricataArgs({ pcap: '/c/input.pcap', rules: '/c/test.rules', outdir: '/o', simulateIps: true }).join(
        ' ',
      ),
    ).toBe(
      '-r /c/input.pcap -S /c/test.rules -l /o -k none --runmode single -c /etc/suricata/suricata.yaml --set unix-command.enabled=no --simulate-ips',
    );
    expect(suricataArgs({ pcap: 'p', rules: 'r', outdir: 'o', config: '/c/suricata.yaml' })).toContain(
      '/c/suricata.yaml',
    );
  });
});
