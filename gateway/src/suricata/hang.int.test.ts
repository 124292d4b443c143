import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SuricataSetup } from './config.js';
import { link, ScratchNetns, whyNotReal } from './int-helpers.js';
import { SuricataSupervisor, type SuricataState } from './supervisor.js';

/**
 * A hung Suricata (alive, bound to its queue, giving no verdicts: SIGSTOP) is found and
 * restarted by its supervisor, and the kernel honours fail-open and fail-closed from the
 * moment the hung one is gone until the new one runs:
 *
 *   client ns 10.215.1.2 (fail-open), 10.215.1.3 (fail-closed)
 *     ── router ns (ip_forward; FORWARD: NFQUEUE 15, with --queue-bypass for .2 only)
 *     ── server ns 10.215.2.2
 *
 * Root only; about 40 s.
 */

const skip = whyNotReal(['iptables-restore', 'ping']);
const QUEUE = 15;
const SERVER = '10.215.2.2';
const OPEN = '10.215.1.2';
const CLOSED = '10.215.1.3';
const P = process.env.PORTCULLIS_LAB_NS_PREFIX ?? '';

const RULES = `*filter
-A FORWARD -s ${OPEN} -j NFQUEUE --queue-num ${QUEUE} --queue-bypass
-A FORWARD -d ${OPEN} -j NFQUEUE --queue-num ${QUEUE} --queue-bypass
-A FORWARD -j NFQUEUE --queue-num ${QUEUE}
COMMIT
`;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe.skipIf(skip)(`a hung Suricata, real Suricata${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let client: ScratchNetns;
  let router: ScratchNetns;
  let server: ScratchNetns;
  let dir: string;
  let supervisor: SuricataSupervisor;
  const states: SuricataState[] = [];

  /** One ping from `source` to the server: whether it came back within 2 s. */
  const passes = (source: string): boolean =>
    spawnSync(
      'ip',
      ['netns', 'exec', client.name, 'ping', '-n', '-q', '-c', '1', '-W', '2', '-I', source, SERVER],
      {
        stdio: 'ignore',
        timeout: 20_000,
      },
    ).status === 0;

  const waitFor = async (what: string, ok: () => boolean, ms: number): Promise<void> => {
    const deadline = Date.now() + ms;
    while (!ok()) {
      if (Date.now() > deadline)
        throw new Error(`${what} did not happen within ${ms} ms; states: ${JSON.stringify(states)}`);
      await sleep(100);
    }
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'suricata-hang-'));
    client = ScratchNetns.create(`${P}pch-c`);
    router = ScratchNetns.create(`${P}pch-r`);
    server = ScratchNetns.create(`${P}pch-s`);
    link(client, 'c0', `${OPEN}/24`, router, 'rc', '10.215.1.1/24');
    client.exec('ip', 'addr', 'add', `${CLOSED}/24`, 'dev', 'c0');
    link(server, 's0', `${SERVER}/24`, router, 'rs', '10.215.2.1/24');
    client.exec('ip', 'route', 'add', 'default', 'via', '10.215.1.1');
    server.exec('ip', 'route', 'add', 'default', 'via', '10.215.2.1');
    router.exec('sysctl', '-qw', 'net.ipv4.ip_forward=1');
    router.execInput(RULES, 'iptables-restore');
    await writeFile(join(dir, 'local.rules'), '');
    const setup: SuricataSetup = {
      configFile: join(dir, 'suricata.yaml'),
      logDir: join(dir, 'log'),
      pidFile: join(dir, 'suricata.pid'),
      commandSocket: join(dir, 'command.sock'),
      eveSocket: join(dir, 'eve.sock'),
      ruleFiles: [join(dir, 'local.rules')],
      nfq: { queue: QUEUE, mode: 'accept' },
    };
    supervisor = new SuricataSupervisor({
      setup,
      spawner: router.spawner(),
      // found within ~6 s; then 10 s without any Suricata, to see the kernel's own verdicts
      liveness: { intervalMs: 2000, failures: 3 },
      backoff: { initialMs: 10_000 },
      onStatus: (s) => states.push(s),
    });
    await supervisor.start();
    await supervisor.waitUntilRunning(90_000);
  }, 120_000);

  afterAll(async () => {
    await supervisor?.stop();
    for (const ns of [client, router, server]) ns?.delete();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 60_000);

  it('is killed and restarted; meanwhile fail-open flows and fail-closed does not', async () => {
    // a working Suricata: both pass (the control for everything below)
    expect(passes(OPEN)).toBe(true);
    expect(passes(CLOSED)).toBe(true);
    const hung = supervisor.status().pid!;

    process.kill(hung, 'SIGSTOP');
    const stoppedAt = Date.now();
    // hung: bound to the queue, no verdicts; nothing flows, fail-open or not
    expect(passes(OPEN)).toBe(false);
    expect(passes(CLOSED)).toBe(false);

    await waitFor('the hang was acted on', () => supervisor.status().status === 'backoff', 30_000);
    const detectedMs = Date.now() - stoppedAt;
    expect(supervisor.status().reason).toMatch(/^Suricata is hung \(/);
    // the hung process is gone: the kernel's verdicts now, fail-open passes, fail-closed drops
    expect(passes(OPEN)).toBe(true);
    expect(passes(CLOSED)).toBe(false);
    expect(supervisor.status().status).toBe('backoff'); // still no Suricata when we looked

    await supervisor.waitUntilRunning(90_000);
    const restartedMs = Date.now() - stoppedAt;
    expect(supervisor.status().pid).not.toBe(hung);
    await waitFor('fail-closed traffic passes again', () => passes(CLOSED), 20_000);
    expect(passes(OPEN)).toBe(true);
    console.log(
      `[hang] Suricata SIGSTOPped: killed after ${(detectedMs / 1000).toFixed(1)} s (${supervisor.status().failures} failure), ` +
        `running again after ${(restartedMs / 1000).toFixed(1)} s; reason: ${states.find((s) => s.status === 'backoff')?.reason}`,
    );
  }, 180_000);
});
