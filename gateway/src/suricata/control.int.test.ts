import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STARTED_DIED_RESTARTED } from '../process/test-fakes.js';
import { isPortcullisError } from '../errors.js';
import { suricataArgs, type SuricataSetup } from './config.js';
import { SuricataControl } from './control.js';
import { ScratchNetns, whyNotReal } from './int-helpers.js';
import { SuricataSupervisor, writeSuricataFiles, type SuricataState } from './supervisor.js';

/**
 * The command socket client and the supervisor against a real Suricata 7 in NFQ mode,
 * bound to a queue inside a scratch network namespace (no traffic needed). Root only.
 */

const skip = whyNotReal();
const QUEUE = 11;
const EVIL = 'drop http any any -> any any (msg:"EVIL"; content:"EVIL"; sid:1000001; rev:1;)\n';

async function makeSetup(dir: string): Promise<SuricataSetup> {
  await writeFile(join(dir, 'local.rules'), EVIL);
  return {
    configFile: join(dir, 'suricata.yaml'),
    logDir: join(dir, 'log'),
    pidFile: join(dir, 'suricata.pid'),
    commandSocket: join(dir, 'command.sock'),
    eveSocket: join(dir, 'eve.sock'),
    ruleFiles: [join(dir, 'local.rules')],
    nfq: { queue: QUEUE },
    statsInterval: 1,
  };
}

async function eventually<T>(fn: () => Promise<T>, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

describe.skipIf(skip)(
  `Suricata command socket and supervisor, real Suricata${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    let ns: ScratchNetns;
    let dir: string;
    let setup: SuricataSetup;

    beforeAll(async () => {
      ns = ScratchNetns.create('pcs-ctl');
      dir = await mkdtemp(join(tmpdir(), 'suricata-int-'));
      setup = await makeSetup(dir);
    });
    afterAll(async () => {
      ns?.delete();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    describe('SuricataControl', () => {
      let supervisor: SuricataSupervisor;
      let control: SuricataControl;

      beforeAll(async () => {
        supervisor = new SuricataSupervisor({ setup, spawner: ns.spawner() });
        await supervisor.start();
        await supervisor.waitUntilRunning(60_000);
        control = new SuricataControl({ path: setup.commandSocket });
      }, 70_000);
      afterAll(async () => {
        await supervisor?.stop();
      }, 30_000);

      it('answers version and uptime', async () => {
        expect(await control.version()).toMatch(/^7\.\d+\.\d+/);
        expect(await control.uptime()).toBeGreaterThanOrEqual(0);
        expect(await control.ping()).toBe(true);
      });

      it('reads the generated configuration back', async () => {
        expect(await control.confGet('nfq.mode')).toBe('repeat');
        expect(await control.confGet('nfq.bypass-mark')).toBe('0x40000000');
        expect(await control.confGet('stream.bypass')).toBe('yes');
        expect(await control.confGet('app-layer.protocols.tls.encryption-handling')).toBe('bypass');
        // kept from Debian's configuration through the include
        expect(await control.confGet('app-layer.protocols.http.enabled')).toBe('yes');
      });

      it('reports the rules loaded and reloads changed rule files', async () => {
        expect(await control.rulesetStats()).toEqual([
          { id: 0, rules_loaded: 1, rules_failed: 0, rules_skipped: 0 },
        ]);
        const [before] = await control.lastReload();
        await appendFile(
          join(dir, 'local.rules'),
          'alert tcp any any -> any any (msg:"two"; content:"TWO"; sid:1000002; rev:1;)\n',
        );
        expect(await control.reloadRules()).toEqual([
          { id: 0, rules_loaded: 2, rules_failed: 0, rules_skipped: 0 },
        ]);
        const [after] = await control.lastReload();
        expect(after!.last_reload).not.toBe(before!.last_reload);
      }, 20_000);

      it('lists the rules that failed to load', async () => {
        await appendFile(
          join(dir, 'local.rules'),
          'alert tcp any any -> any any (msg:"bad"; content:"x"; sid:1000003; nosuchkeyword;)\n',
        );
        const [stats] = await control.reloadRules();
        expect(stats).toMatchObject({ rules_loaded: 2, rules_failed: 1 });
        const failed = await control.failedRules();
        expect(failed).toEqual([
          expect.objectContaining({
            filename: join(dir, 'local.rules'),
            line: 3,
            rule: expect.stringContaining('nosuchkeyword'),
          }),
        ]);
        await writeFile(join(dir, 'local.rules'), EVIL);
        await control.reloadRules({ blocking: false });
        await eventually(
          async () =>
            expect(await control.rulesetStats()).toEqual([
              expect.objectContaining({ rules_loaded: 1, rules_failed: 0 }),
            ]),
          10_000,
        );
      }, 30_000);

      it('dumps the counters once the stats thread has run', async () => {
        const counters = await eventually(() => control.dumpCounters(), 5000);
        expect(counters.uptime).toEqual(expect.any(Number));
        expect(counters.flow_bypassed).toMatchObject({ local_capture_pkts: expect.any(Number) });
        expect(counters.tcp).toMatchObject({ stream_depth_reached: expect.any(Number) });
      }, 10_000);

      it('rejects an unknown command with SURICATA_COMMAND_REJECTED', async () => {
        let err: unknown;
        await control.command('no-such-command').catch((e: unknown) => (err = e));
        expect(isPortcullisError(err, 'SURICATA_COMMAND_REJECTED')).toBe(true);
        expect((err as Error).message).toBe('Suricata refused "no-such-command": Unknown command');
      });
    });

    describe('SuricataSupervisor', () => {
      it('restarts Suricata after it is killed', async () => {
        const states: SuricataState[] = [];
        const supervisor = new SuricataSupervisor({
          setup,
          spawner: ns.spawner(),
          backoff: { initialMs: 200 },
          onStatus: (s) => states.push(s),
        });
        try {
          await supervisor.start();
          await supervisor.waitUntilRunning(60_000);
          const first = supervisor.status().pid!;
          process.kill(first, 'SIGKILL');
          await eventually(
            async () => expect(supervisor.status()).toMatchObject({ status: 'running', failures: 1 }),
            60_000,
          );
          expect(supervisor.status().pid).not.toBe(first);
          expect(states.map((s) => s.status)).toEqual(STARTED_DIED_RESTARTED);
          expect(states[3]!.reason).toMatch(/^Suricata was killed by SIGKILL/);
          expect(await new SuricataControl({ path: setup.commandSocket }).ping()).toBe(true);
        } finally {
          await supervisor.stop();
        }
        expect(supervisor.status().status).toBe('stopped');
        expect(await new SuricataControl({ path: setup.commandSocket, timeoutMs: 500 }).ping()).toBe(false);
      }, 90_000);

      it('replaces a Suricata left by a previous run of the service', async () => {
        // a previous service run started this one and died without stopping it
        await writeSuricataFiles(setup);
        const old = ns.spawner().spawn('suricata', suricataArgs(setup));
        let oldExit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
        old.on('exit', (code, signal) => (oldExit = { code, signal }));
        const control = new SuricataControl({ path: setup.commandSocket, timeoutMs: 1000 });
        await eventually(async () => expect(await control.ping()).toBe(true), 60_000);

        const supervisor = new SuricataSupervisor({ setup, spawner: ns.spawner() });
        try {
          await supervisor.start();
          // start() returns after the old one is gone: SIGTERM, and Suricata exits cleanly on it
          await eventually(async () => expect(oldExit).toEqual({ code: 0, signal: null }), 1000);
          await supervisor.waitUntilRunning(60_000);
          expect(supervisor.status().pid).not.toBe(old.pid);
          expect(await control.ping()).toBe(true);
        } finally {
          await supervisor.stop();
        }
      }, 120_000);
    });
  },
);
