import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LineSink } from './eve/ingest.js';
import { EveSocketReader } from './eve/socket-reader.js';
import { DEFAULT_STREAM_DEPTH, NFQ_MARK, type SuricataSetup } from './config.js';
import { SuricataControl, type SuricataCounters } from './control.js';
import { link, run, runAsync, ScratchNetns, whyNotReal } from './int-helpers.js';
import { SuricataSupervisor } from './supervisor.js';

/**
 * Real traffic through Suricata on NFQUEUE, with the generated configuration:
 *
 *   client ns 10.213.1.2 ── router ns (ip_forward, iptables, Suricata -q 13) ── server ns 10.213.2.2
 *
 * This kernel has no nft `queue` expression, so forwarded packets are queued with the
 * xtables NFQUEUE target (iptables-nft, compat layer), with the bypass plumbing:
 *
 *   mangle PREROUTING: CONNMARK --restore-mark --mask 0x40000000       conntrack → packet: bypass bit
 *   filter FORWARD:    mark 0x48000000/0x48000000 → CONNMARK --save-mark --mask 0x40000000
 *                      mark 0x08000000/0x08000000 → ACCEPT              Suricata's verdict (repeat) given
 *                      mark 0x40000000/0x40000000 → ACCEPT              bypassed flow: skip the queue
 *                      NFQUEUE --queue-num 13 --queue-bypass
 *
 * Suricata (nfq.mode repeat) re-injects every packet with the repeat bit; the one packet
 * that triggers a bypass also carries the bypass bit, which the first FORWARD rule saves
 * in the conntrack mark; the restore then lets the flow's later packets skip the queue.
 *
 * Shows (a) a drop rule dropping an HTTP request while a clean one passes, (b) plain TCP
 * and HTTP bulk flows bypassed at the stream depth, (c) TLS bypassed once encrypted, and
 * measures throughput without Suricata, with bypass and without. Root only; < 1 minute.
 */

const skip = whyNotReal(['iptables-restore', 'openssl', 'node']);
const QUEUE = 13;
const MiB = 1024 * 1024;
const TRANSFER_MS = 3000;
const SERVER = '10.213.2.2';

const hex = (n: number): string => `0x${n.toString(16)}`;
const BYPASS = hex(NFQ_MARK.bypass);
const REPEAT = hex(NFQ_MARK.repeat);

/** The iptables plumbing of the router namespace (iptables-restore format). */
const RULES = `*mangle
-A PREROUTING -j CONNMARK --restore-mark --nfmask ${BYPASS} --ctmask ${BYPASS}
COMMIT
*filter
-A FORWARD -m mark --mark ${hex(NFQ_MARK.bypass | NFQ_MARK.repeat)}/${hex(NFQ_MARK.bypass | NFQ_MARK.repeat)} -j CONNMARK --save-mark --nfmask ${BYPASS} --ctmask ${BYPASS}
-A FORWARD -m mark --mark ${REPEAT}/${REPEAT} -j ACCEPT
-A FORWARD -m mark --mark ${BYPASS}/${BYPASS} -j ACCEPT
-A FORWARD -j NFQUEUE --queue-num ${QUEUE} --queue-bypass
COMMIT
`;

const RULE = 'drop http any any -> any any (msg:"EVIL in HTTP"; content:"EVIL"; sid:1000001; rev:1;)\n';

/** Plain TCP source on 9000 (sends until the client closes), HTTP on 8080, HTTPS on 8443. */
const SERVER_JS = `
import net from 'node:net'; import http from 'node:http'; import https from 'node:https'; import fs from 'node:fs';
const dir = process.argv[2];
const chunk = Buffer.alloc(1 << 20, 0x61);
const handler = (req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname !== '/big') { res.end('ok ' + req.url); return; }
  const mb = Number(url.searchParams.get('mb') ?? 1);
  res.writeHead(200, { 'content-length': mb * chunk.length });
  let n = 0;
  const pump = () => { while (n < mb) { n++; if (!res.write(chunk)) { res.once('drain', pump); return; } } res.end(); };
  res.on('error', () => {}); pump();
};
let up = 0; const ready = () => { if (++up === 3) console.log('ready'); };
net.createServer((s) => {
  s.on('error', () => {});
  const pump = () => { while (!s.destroyed && s.write(chunk)); };
  s.on('drain', pump); pump();
}).listen(9000, ready);
http.createServer(handler).listen(8080, ready);
https.createServer({ key: fs.readFileSync(dir + '/key.pem'), cert: fs.readFileSync(dir + '/cert.pem') }, handler).listen(8443, ready);
`;

/** `tcp <host> <ms>` or `get <url> <ms>`: one transfer, for at most ms; prints one JSON line. */
const CLIENT_JS = `
import net from 'node:net'; import http from 'node:http'; import https from 'node:https';
const [mode, target, maxMs] = process.argv.slice(2);
const t0 = process.hrtime.bigint(); let bytes = 0; let status; let body = ''; let done = false;
const finish = (error) => { if (done) return; done = true; const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  console.log(JSON.stringify({ bytes, ms, status, body, error })); process.exit(0); };
setTimeout(() => finish(bytes === 0 && status === undefined ? 'timeout' : undefined), Number(maxMs));
if (mode === 'tcp') {
  const s = net.connect(9000, target); s.on('data', (d) => { bytes += d.length; }); s.on('error', (e) => finish(e.message)); s.on('close', () => finish());
} else {
  const lib = target.startsWith('https:') ? https : http;
  const req = lib.get(target, { rejectUnauthorized: false }, (res) => {
    status = res.statusCode;
    res.on('data', (d) => { bytes += d.length; if (body.length < 100) body += d.toString('utf8', 0, 100); });
    res.on('end', () => finish()); res.on('error', (e) => finish(e.message));
  });
  req.on('error', (e) => finish(e.message));
}
`;

interface Transfer {
  readonly bytes: number;
  readonly ms: number;
  readonly status?: number;
  readonly body: string;
  readonly error?: string;
}

const mbits = (t: Transfer): number => Math.round((t.bytes * 8) / (t.ms / 1000) / 1e6);

describe.skipIf(skip)(`Suricata inline on NFQUEUE, real traffic${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let client: ScratchNetns;
  let router: ScratchNetns;
  let server: ScratchNetns;
  let dir: string;
  let setup: SuricataSetup;
  let serverProcess: ChildProcess | undefined;
  let reader: EveSocketReader | undefined;
  const eve: Array<Record<string, unknown>> = [];
  const results: Record<
    string,
    { mbit_s: number; MiB: number; queued_pkts: number; bypass_accepted_MiB: number }
  > = {};
  const counters: Record<string, SuricataCounters> = {};

  /**
   * One client run in the client namespace. A client that outlives its own limit by 20 s is
   * killed and tried once more, with where it was stuck printed: on a loaded 2-core CI machine
   * the client once never exited (a stuck start under `ip netns exec`, not a verdict of
   * Suricata: the client ends itself after maxMs whatever the network does).
   */
  const transfer = async (mode: 'tcp' | 'get', target: string, maxMs = TRANSFER_MS): Promise<Transfer> => {
    const argv = ['netns', 'exec', client.name, 'node', join(dir, 'client.mjs'), mode, target, String(maxMs)];
    const once = async (): Promise<Transfer> =>
      JSON.parse(await runAsync('ip', argv, maxMs + 20_000)) as Transfer;
    try {
      return await once();
    } catch (error) {
      if (!(error instanceof Error) || !error.message.includes('timed out')) throw error;
      console.warn(`client retried: ${error.message}`);
      return once();
    }
  };

  /** Packets sent to userspace on our queue so far (0: nobody bound to it). */
  const queued = (): number => {
    const line = router
      .exec('cat', '/proc/net/netfilter/nfnetlink_queue')
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .find((f) => f[0] === String(QUEUE));
    return line ? Number(line[7]) : 0;
  };

  /** Bytes accepted by the "bypassed flow" rule so far. */
  const bypassAccepted = (): number => {
    const line = router
      .exec('iptables-save', '-c', '-t', 'filter')
      .split('\n')
      .find((l) => l.includes(`--mark ${BYPASS}/${BYPASS} -j ACCEPT`));
    return Number(/^\[\d+:(\d+)\]/.exec(line ?? '')?.[1] ?? 0);
  };

  /** One measured transfer: throughput, packets queued to Suricata, bytes that skipped the queue. */
  const measure = async (
    name: string,
    mode: 'tcp' | 'get',
    target: string,
  ): Promise<{ t: Transfer; queued: number; bypassBytes: number }> => {
    const q0 = queued();
    const b0 = bypassAccepted();
    const t = await transfer(mode, target);
    const result = { t, queued: queued() - q0, bypassBytes: bypassAccepted() - b0 };
    results[name] = {
      mbit_s: mbits(t),
      MiB: Math.round(t.bytes / MiB),
      queued_pkts: result.queued,
      bypass_accepted_MiB: Math.round(result.bypassBytes / MiB),
    };
    return result;
  };

  const startSuricata = async (s: SuricataSetup): Promise<SuricataSupervisor> => {
    const supervisor = new SuricataSupervisor({ setup: s, spawner: router.spawner() });
    await supervisor.start();
    await supervisor.waitUntilRunning(60_000);
    return supervisor;
  };

  const stopSuricata = async (supervisor: SuricataSupervisor | undefined, phase: string): Promise<void> => {
    if (!supervisor) return;
    if (supervisor.status().status === 'running') {
      counters[phase] = await new SuricataControl({ path: setup.commandSocket })
        .dumpCounters()
        .catch(() => ({}));
    }
    await supervisor.stop();
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'suricata-nfq-'));
    client = ScratchNetns.create('pcq-c');
    router = ScratchNetns.create('pcq-r');
    server = ScratchNetns.create('pcq-s');
    link(client, 'c0', '10.213.1.2/24', router, 'rc', '10.213.1.1/24');
    link(server, 's0', `${SERVER}/24`, router, 'rs', '10.213.2.1/24');
    client.exec('ip', 'route', 'add', 'default', 'via', '10.213.1.1');
    server.exec('ip', 'route', 'add', 'default', 'via', '10.213.2.1');
    router.exec('sysctl', '-qw', 'net.ipv4.ip_forward=1');
    router.execInput(RULES, 'iptables-restore');

    await writeFile(join(dir, 'server.mjs'), SERVER_JS);
    await writeFile(join(dir, 'client.mjs'), CLIENT_JS);
    await writeFile(join(dir, 'local.rules'), RULE);
    run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
      '-days',
      '1',
      '-subj',
      '/CN=server.test',
    ]);
    serverProcess = spawn('ip', ['netns', 'exec', server.name, 'node', join(dir, 'server.mjs'), dir], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      serverProcess!.stdout!.once('data', () => resolve());
      serverProcess!.once('exit', (code) => reject(new Error(`test server exited (${code})`)));
    });

    // warm the server up (JIT, first TLS handshake) so that the baseline is not the cold run
    await transfer('get', `https://${SERVER}:8443/big?mb=20`, 3000);
    await transfer('tcp', SERVER, 300);

    setup = {
      configFile: join(dir, 'suricata.yaml'),
      logDir: join(dir, 'log'),
      pidFile: join(dir, 'suricata.pid'),
      commandSocket: join(dir, 'command.sock'),
      eveSocket: join(dir, 'eve.sock'),
      ruleFiles: [join(dir, 'local.rules')],
      nfq: { queue: QUEUE, failOpen: true },
      homeNet: ['10.213.1.0/24'],
      statsInterval: 1,
    };
    const sink: LineSink = {
      pushLine: (line) => eve.push(JSON.parse(line) as Record<string, unknown>),
      reject: () => undefined,
    };
    reader = new EveSocketReader({ path: setup.eveSocket, sink });
    await reader.start();
  }, 60_000);

  afterAll(async () => {
    await reader?.stop();
    serverProcess?.kill('SIGKILL');
    for (const ns of [client, router, server]) ns?.delete();
    if (dir) await rm(dir, { recursive: true, force: true });
    const tcp = (name: string): string => (results[name] ? `${results[name]!.mbit_s} Mbit/s` : 'n/a');
    console.info(
      [
        'NFQ bypass measurements (3 s transfers, 2 cores):',
        JSON.stringify(results, null, 1),
        `plain TCP: no Suricata ${tcp('tcp, no Suricata')}, Suricata with bypass ${tcp('tcp, bypass')}, Suricata without bypass ${tcp('tcp, no bypass')}`,
        `Suricata counters: ${JSON.stringify(
          Object.fromEntries(
            Object.entries(counters).map(([phase, c]) => [
              phase,
              {
                stream_depth_reached: c.tcp?.stream_depth_reached,
                flow_bypassed: c.flow_bypassed,
                ips: { accepted: c.ips?.accepted, blocked: c.ips?.blocked },
              },
            ]),
          ),
        )}`,
      ].join('\n'),
    );
  }, 30_000);

  it('without Suricata: the queue is bypassed by the kernel (--queue-bypass), baseline throughput', async () => {
    const tcp = await measure('tcp, no Suricata', 'tcp', SERVER);
    expect(tcp.t.bytes).toBeGreaterThan(10 * MiB);
    expect(tcp.queued).toBe(0);
    const tls = await measure('https, no Suricata', 'get', `https://${SERVER}:8443/big?mb=200`);
    expect(tls.t.status).toBe(200);
  }, 30_000);

  describe('Suricata with bypass (stream depth 1 MiB, TLS encryption-handling bypass)', () => {
    let supervisor: SuricataSupervisor | undefined;
    beforeAll(async () => {
      supervisor = await startSuricata(setup);
    }, 70_000);
    afterAll(async () => {
      await stopSuricata(supervisor, 'bypass');
    }, 30_000);

    it('(a) drops an HTTP request containing EVIL and passes a clean one', async () => {
      const clean = await transfer('get', `http://${SERVER}:8080/hello`, 3000);
      expect(clean).toMatchObject({ status: 200, body: 'ok /hello' });
      const evil = await transfer('get', `http://${SERVER}:8080/?q=EVIL`, 2000);
      expect(evil.status).toBeUndefined();
      expect(evil.error).toBe('timeout');
      const deadline = Date.now() + 5000;
      let alert: Record<string, unknown> | undefined;
      while (!alert && Date.now() < deadline) {
        alert = eve.find(
          (e) => e.event_type === 'alert' && (e.alert as { signature_id?: number }).signature_id === 1000001,
        );
        if (!alert) await new Promise((r) => setTimeout(r, 100));
      }
      expect(alert).toMatchObject({
        dest_port: 8080,
        app_proto: 'http',
        alert: { action: 'blocked', signature: 'EVIL in HTTP' },
      });
    }, 60_000);

    it('(b) bypasses a plain TCP bulk flow once the stream depth is reached', async () => {
      const { t, queued: q, bypassBytes } = await measure('tcp, bypass', 'tcp', SERVER);
      expect(t.bytes).toBeGreaterThan(50 * MiB);
      // about one stream depth of packets goes to Suricata, the rest skips the queue
      expect(q).toBeLessThan(10_000);
      expect(bypassBytes).toBeGreaterThan(0.9 * (t.bytes - 4 * DEFAULT_STREAM_DEPTH));
    }, 60_000);

    it('(b) bypasses an HTTP download the same way', async () => {
      const {
        t,
        queued: q,
        bypassBytes,
      } = await measure('http 200 MiB, bypass', 'get', `http://${SERVER}:8080/big?mb=200`);
      expect(t.status).toBe(200);
      expect(q).toBeLessThan(10_000);
      // a Suricata slowed down by a loaded machine marks the flow a little later (0.8 seen in CI)
      expect(bypassBytes).toBeGreaterThan(0.7 * (t.bytes - 4 * DEFAULT_STREAM_DEPTH));
    }, 60_000);

    it('(c) bypasses TLS as soon as it is encrypted', async () => {
      const {
        t,
        queued: q,
        bypassBytes,
      } = await measure('https 200 MiB, bypass', 'get', `https://${SERVER}:8443/big?mb=200`);
      expect(t.status).toBe(200);
      // the handshake only (TLS 1.3: a handful of packets), far less than a stream depth
      expect(q).toBeLessThan(100);
      expect(bypassBytes).toBeGreaterThan(0.9 * t.bytes);
    }, 60_000);
  });

  describe('Suricata without bypass', () => {
    let supervisor: SuricataSupervisor | undefined;
    beforeAll(async () => {
      supervisor = await startSuricata({ ...setup, bypass: { stream: false, tls: false } });
    }, 70_000);
    afterAll(async () => {
      await stopSuricata(supervisor, 'no bypass');
    }, 30_000);

    it('queues every packet of a bulk TCP flow', async () => {
      const { queued: q, bypassBytes } = await measure('tcp, no bypass', 'tcp', SERVER);
      expect(bypassBytes).toBe(0);
      expect(q).toBeGreaterThan(10 * results['tcp, bypass']!.queued_pkts);
    }, 60_000);

    it('queues every packet of a TLS download', async () => {
      const { queued: q, bypassBytes } = await measure(
        'https, no bypass',
        'get',
        `https://${SERVER}:8443/big?mb=200`,
      );
      expect(bypassBytes).toBe(0);
      expect(q).toBeGreaterThan(1000);
    }, 60_000);
  });
});
