import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify as toYaml } from 'yaml';
import { PortcullisError } from '../../gateway/src/errors.js';
import type { Logger } from '../../gateway/src/log.js';
import { silentLogger } from '../../gateway/src/log.js';
import { guestPort, namespaces, ns, type LabTopology } from './topology.js';
import { labVendorPaths, makeLabVendor } from './vendor.js';
import { certificateFingerprint } from '../../gateway/src/auth/cert.js';
import { parseMountinfo } from '../../gateway/src/process/idle-cpu.js';
import { generatePassword, hashPassword } from '../../gateway/src/auth/password.js';
import { Store } from '../../gateway/src/store/store.js';

const HERE = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(HERE, '..', '..');
export const DEFAULT_TOPOLOGY = join(HERE, 'lab.yaml');
/** What the lab's alternative resolver answers for every name. */
export const ALT_RESOLVER_ANSWER = '203.0.113.66';
export const DEFAULT_STATE_DIR = process.env.PORTCULLIS_LAB_DIR ?? '/run/portcullis-lab';

/** A process the lab started, in a namespace (or `root` for the machine's own). */
export interface LabService {
  readonly name: string;
  readonly ns: string;
  readonly pid: number;
  readonly listen: string[];
  readonly log: string;
}

export interface LabState {
  readonly stateDir: string;
  readonly topologyFile: string;
  readonly namespaces: string[];
  readonly services: LabService[];
  readonly api: { readonly mgmt: string; readonly local: string };
  /**
   * How to log in to the lab's service: the admin the lab created (its password is
   * printed by `portcullis lab status`), an admin API token for the lab's tests and
   * tools, and the service's self-signed certificate (PEM file, made at its first start).
   */
  readonly auth?: {
    readonly user: string;
    readonly password: string;
    readonly token: string;
    readonly cert: string;
  };
  readonly startedAt: string;
}

/** The lab service's store (SQLite in its data folder). */
export function labStorePath(stateDir: string): string {
  return join(stateDir, 'secvm-data', 'portcullis.db');
}

/**
 * The lab's first admin (`admin`, a random password) and an admin API token named
 * `lab`, written into the lab service's store before the service first starts.
 */
async function labLogins(stateDir: string): Promise<NonNullable<LabState['auth']>> {
  mkdirSync(join(stateDir, 'secvm-data'), { recursive: true });
  const store = Store.open({ path: labStorePath(stateDir) });
  try {
    const password = generatePassword();
    store.auth.addUser({ name: 'admin', role: 'admin', passwordHash: await hashPassword(password) }, 'lab');
    const { token } = store.auth.createToken({ name: 'lab', role: 'admin' }, 'lab');
    return { user: 'admin', password, token, cert: join(stateDir, 'secvm-data', 'tls', 'cert.pem') };
  } finally {
    store.close();
  }
}

export interface UpOptions {
  readonly topology: LabTopology;
  readonly topologyFile: string;
  readonly stateDir?: string;
  readonly log?: Logger;
  /** Start `portcullis serve` in secvm (default true). */
  readonly service?: boolean;
  /** Extra environment for the service. */
  readonly serviceEnv?: Record<string, string>;
  /** Progress lines for a person watching. */
  readonly progress?: (line: string) => void;
}

function run(cmd: string, args: string[], input?: string): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new PortcullisError(
      'LAB_FAILED',
      `${cmd} ${args.join(' ')} failed: ${(e.stderr ?? e.message).trim()}`,
      { cause: err },
    );
  }
}

/** `ip` in a namespace. */
function ipn(ns: string, ...args: string[]): string {
  return run('ip', ['-n', ns, ...args]);
}

function nsExec(ns: string, cmd: string, ...args: string[]): string {
  return run('ip', ['netns', 'exec', ns, cmd, ...args]);
}

/** Start a long-running process inside a namespace, detached, output to a log file. */
export function spawnIn(
  ns: string,
  name: string,
  argv: string[],
  stateDir: string,
  env: Record<string, string> = {},
): LabService & { listen: string[] } {
  const log = join(stateDir, `${ns}-${name}.log`);
  const fd = openSync(log, 'a');
  const full = ns === 'root' ? argv : ['ip', 'netns', 'exec', ns, ...argv];
  const child = spawn(full[0]!, full.slice(1), {
    detached: true,
    stdio: ['ignore', fd, fd],
    env: { ...process.env, ...env },
  });
  child.unref();
  if (child.pid === undefined) throw new PortcullisError('SPAWN_FAILED', `cannot start ${name} in ${ns}`);
  return { name, ns, pid: child.pid, listen: [], log };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Wait until `probe` succeeds or time runs out. With `service`: stop at once if its
 * process has died, and put the end of its log in the error either way.
 */
async function waitFor(
  what: string,
  probe: () => boolean,
  timeoutMs = 30_000,
  service?: { readonly pid: number; readonly log: string },
): Promise<void> {
  const until = Date.now() + timeoutMs;
  const logTail = (): string => {
    if (!service || !existsSync(service.log)) return '';
    const lines = readFileSync(service.log, 'utf8').trimEnd().split('\n').slice(-15);
    return `; the end of ${service.log}:\n${lines.join('\n')}`;
  };
  while (Date.now() < until) {
    if (probe()) return;
    if (service && !alive(service.pid))
      throw new PortcullisError('LAB_FAILED', `the process stopped before ${what} was up${logTail()}`);
    await sleep(100);
  }
  throw new PortcullisError(
    'LAB_FAILED',
    `timed out after ${timeoutMs / 1000} s waiting for ${what}${logTail()}`,
  );
}

function tcpOpen(ns: string, host: string, port: number): boolean {
  try {
    execFileSync('ip', ['netns', 'exec', ns, 'bash', '-c', `exec 3<>/dev/tcp/${host}/${port}`], {
      stdio: 'ignore',
      timeout: 2000,
    });
    return true;
  } catch {
    return false;
  }
}

export function readState(stateDir = DEFAULT_STATE_DIR): LabState | undefined {
  const file = join(stateDir, 'state.json');
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, 'utf8')) as LabState;
}

function writeState(state: LabState): void {
  writeFileSync(join(state.stateDir, 'state.json'), JSON.stringify(state, null, 2));
}

/** The seed policy of the lab: one VM per guest, with the lab's VPN and update hosts. */
export function labPolicy(t: LabTopology): Record<string, unknown> {
  return {
    vms: t.guests.map((g) => ({
      name: g.name,
      port: guestPort(g),
      mac: g.mac,
      ipv4: g.ipv4,
      profile: g.profile,
    })),
    profiles: [],
    schedules: [],
    vpnEndpoints: [t.internet.vpn],
    updateServers: [t.internet.update],
    ipv6: false,
  };
}

/** The lab vendor's HTTPS port (443 of every internet address is the web server's). */
export const VENDOR_PORT = 8443;

/** The lab vendor's address. */
export function vendorAddress(t: LabTopology): string {
  return t.internet.vendor ?? '203.0.113.60';
}

/** The service config for secvm. */
export function labServiceConfig(t: LabTopology, stateDir: string): Record<string, unknown> {
  const [, prefix] = t.lan.subnet.split('/');
  return {
    // rule updates from the lab's vendor over the WAN, like a real appliance: the vendor's
    // certificate is of the lab's CA (production: a public CA in Node's roots, or caFile)
    bundles: {
      source: `https://${vendorAddress(t)}:${VENDOR_PORT}/`,
      trustedRoot: labVendorPaths(stateDir).root,
      caFile: join(stateDir, 'lab-ca.crt'),
      // on demand only in the lab: tests and `portcullis bundle update` decide when
      pollSeconds: 0,
      healthSeconds: 3,
    },
    network: {
      lan: { iface: 'lan0', ipv4: t.lan.gateway, prefix: Number(prefix) },
      wan: { iface: 'wan0' },
      mgmt: { iface: 'mgmt0', ports: [t.api.port, 22] },
      blockPagePort: 80,
    },
    api: { listen: t.mgmt.secvm.split('/')[0], port: t.api.port },
    dns: {
      listen: [t.lan.gateway],
      port: 53,
      upstream: [t.internet.resolver],
      listsDir: join(REPO, 'rules', 'lists'),
      // SafeSearch endpoints resolve in the lab's own DNS to a lab web server
      safeSearchTargets: t.internet.safeSearch,
    },
    dhcp: { enabled: true, leaseTime: '12h', unassignedRange: t.lan.unassigned },
    bypass: {
      doh: [
        join(REPO, 'rules', 'lists', 'bypass', 'doh-addresses.txt'),
        join(stateDir, 'lab-doh-addresses.txt'),
      ],
      tor: [join(stateDir, 'lab-tor-relays.txt')],
    },
    parental: { sampleSeconds: 5 },
    suricata: {
      enabled: true,
      queue: 0,
      queueKind: 'auto',
      ruleFiles: [join(REPO, 'appliance', 'suricata', 'local.rules'), join(HERE, 'lab.rules')],
      // bench:bundle compares with nice 19 alone (BENCH_IDLE_CPU=off)
      ...(process.env.PORTCULLIS_LAB_RELOAD_IDLE_CPU === 'off' ? { reloadIdleCpu: false } : {}),
    },
    dataDir: join(stateDir, 'secvm-data'),
    policyFile: join(stateDir, 'policy.yaml'),
    nft: { backend: 'auto', driftInterval: 5 },
  };
}

/** Write the internet namespace's hosts file and make its resolver re-read it. */
export function setInternetHosts(hosts: Record<string, string>, stateDir = DEFAULT_STATE_DIR): void {
  const lines = Object.entries(hosts).map(([name, ip]) => `${ip} ${name}`);
  writeFileSync(join(stateDir, 'internet-hosts'), lines.join('\n') + '\n');
  const state = readState(stateDir);
  const resolver = state?.services.find((s) => s.name === 'resolver');
  if (resolver && alive(resolver.pid)) {
    // dnsmasq runs under `ip netns exec`, which execs it: the pid is dnsmasq's own
    process.kill(resolver.pid, 'SIGHUP');
  }
}

/** Build the lab. Idempotent: a lab that is up is taken down first. */
export async function labUp(options: UpOptions): Promise<LabState> {
  const t = options.topology;
  const stateDir = options.stateDir ?? DEFAULT_STATE_DIR;
  const say = options.progress ?? (() => undefined);
  const log = options.log ?? silentLogger;
  await labDown({ stateDir, topology: t });
  mkdirSync(stateDir, { recursive: true });
  const services: LabService[] = [];
  const nsList = namespaces(t);

  say(`namespaces: ${nsList.join(', ')}`);
  for (const ns of nsList) {
    run('ip', ['netns', 'add', ns]);
    ipn(ns, 'link', 'set', 'lo', 'up');
    mkdirSync(`/etc/netns/${ns}`, { recursive: true });
    writeFileSync(`/etc/netns/${ns}/resolv.conf`, '');
  }

  // the gate is closed before anything can flow
  run('ip', ['netns', 'exec', ns('secvm'), 'nft', '-f', join(REPO, 'appliance', 'nft', 'gate-closed.nft')]);

  // every guest's link ends in secvm as a port of its own (on a KVM host: the security
  // VM's NIC on that guest's own network, appliance/libvirt/), an isolated port of the
  // guest bridge lan0: secvm sees which port each frame came in on, and guests reach
  // only secvm, never each other
  say('secvm: guest bridge lan0 with one isolated port per guest');
  ipn(ns('secvm'), 'link', 'add', 'lan0', 'type', 'bridge');
  for (const g of t.guests) {
    const port = guestPort(g);
    ipn(ns('secvm'), 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns(g.name));
    ipn(ns(g.name), 'link', 'set', 'eth0', 'address', g.mac);
    ipn(ns(g.name), 'link', 'set', 'eth0', 'up');
    ipn(ns('secvm'), 'link', 'set', port, 'master', 'lan0', 'up');
    run('bridge', ['-n', ns('secvm'), 'link', 'set', 'dev', port, 'isolated', 'on']);
  }
  ipn(ns('host'), 'link', 'add', 'mgmt', 'type', 'veth', 'peer', 'name', 'mgmt0', 'netns', ns('secvm'));
  ipn(ns('host'), 'addr', 'add', t.mgmt.host, 'dev', 'mgmt');
  ipn(ns('host'), 'link', 'set', 'mgmt', 'up');

  say('secvm: lan0, wan0, mgmt0; routing with proxy ARP between isolated guests');
  const [, lanPrefix] = t.lan.subnet.split('/');
  ipn(ns('secvm'), 'addr', 'add', `${t.lan.gateway}/${lanPrefix}`, 'dev', 'lan0');
  ipn(ns('secvm'), 'link', 'set', 'lan0', 'up');
  ipn(ns('secvm'), 'addr', 'add', t.mgmt.secvm, 'dev', 'mgmt0');
  ipn(ns('secvm'), 'link', 'set', 'mgmt0', 'up');
  ipn(ns('secvm'), 'link', 'add', 'wan0', 'type', 'veth', 'peer', 'name', 'isp0', 'netns', ns('internet'));
  ipn(ns('secvm'), 'addr', 'add', t.wan.secvm, 'dev', 'wan0');
  ipn(ns('secvm'), 'link', 'set', 'wan0', 'up');
  ipn(ns('secvm'), 'route', 'add', 'default', 'via', t.wan.router);
  for (const [k, v] of [
    ['net.ipv4.ip_forward', '1'],
    ['net.ipv4.conf.lan0.proxy_arp', '1'],
    ['net.ipv4.conf.lan0.proxy_arp_pvlan', '1'],
    ['net.ipv4.conf.all.send_redirects', '0'],
    ['net.ipv4.conf.lan0.send_redirects', '0'],
  ] as const) {
    nsExec(ns('secvm'), 'sysctl', '-qw', `${k}=${v}`);
  }
  // the guest bridge's frames go to the IP stack once, when passed up to lan0: with
  // br_netfilter loaded (by anyone on the machine), its default would also run the inet
  // hooks in the bridge path, and drop the conntrack entry of broadcasts (DHCP) passed
  // up while lan0 is promiscuous (Suricata's AF_PACKET), so they arrive "invalid".
  // -e: nothing to switch off where br_netfilter is not loaded
  nsExec(
    ns('secvm'),
    'sysctl',
    '-e',
    '-qw',
    'net.bridge.bridge-nf-call-iptables=0',
    'net.bridge.bridge-nf-call-ip6tables=0',
    'net.bridge.bridge-nf-call-arptables=0',
  );

  say('internet: uplink router, resolver, web servers');
  const [, wanPrefix] = t.wan.secvm.split('/');
  ipn(ns('internet'), 'addr', 'add', `${t.wan.router}/${wanPrefix}`, 'dev', 'isp0');
  ipn(ns('internet'), 'link', 'set', 'isp0', 'up');
  for (const a of new Set([
    t.internet.resolver,
    t.internet.altResolver,
    t.internet.web,
    t.internet.vpn,
    t.internet.update,
    t.internet.doh,
    t.internet.torRelay,
    vendorAddress(t),
    ...Object.values(t.internet.hosts),
  ])) {
    ipn(ns('internet'), 'addr', 'add', `${a}/32`, 'dev', 'lo');
  }
  const cert = join(stateDir, 'internet.crt');
  const key = join(stateDir, 'internet.key');
  const names = Object.keys(t.internet.hosts);
  run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '30',
    '-subj',
    '/CN=example.test',
    '-addext',
    `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}`,
    '-keyout',
    key,
    '-out',
    cert,
  ]);
  setInternetHosts(t.internet.hosts, stateDir);
  // the rule vendor: a CA of the lab's own, a certificate for the vendor's address and
  // name, keys and a TUF repository with the default bundle as version 1
  const ca = { crt: join(stateDir, 'lab-ca.crt'), key: join(stateDir, 'lab-ca.key') };
  run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '30',
    '-subj',
    '/CN=Portcullis lab CA',
    '-keyout',
    ca.key,
    '-out',
    ca.crt,
  ]);
  const vendorCert = {
    crt: join(stateDir, 'vendor.crt'),
    key: join(stateDir, 'vendor.key'),
    csr: join(stateDir, 'vendor.csr'),
  };
  run('openssl', [
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-subj',
    '/CN=updates.vendor.test',
    '-keyout',
    vendorCert.key,
    '-out',
    vendorCert.csr,
  ]);
  writeFileSync(
    join(stateDir, 'vendor.ext'),
    `subjectAltName=DNS:updates.vendor.test,IP:${vendorAddress(t)}\n`,
  );
  run('openssl', [
    'x509',
    '-req',
    '-in',
    vendorCert.csr,
    '-CA',
    ca.crt,
    '-CAkey',
    ca.key,
    '-CAcreateserial',
    '-days',
    '30',
    '-extfile',
    join(stateDir, 'vendor.ext'),
    '-out',
    vendorCert.crt,
  ]);
  const vendor = await makeLabVendor(stateDir);
  const resolverArgs = (addr: string): string[] => [
    'dnsmasq',
    '--keep-in-foreground',
    '--conf-file=/dev/null',
    '--no-resolv',
    '--no-hosts',
    `--addn-hosts=${join(stateDir, 'internet-hosts')}`,
    `--listen-address=${addr}`,
    '--bind-interfaces',
    '--local-ttl=2',
    '--log-queries',
    '--log-facility=-',
    `--pid-file=${join(stateDir, `dnsmasq-${addr}.pid`)}`,
    '--user=root',
  ];
  services.push({
    ...spawnIn(ns('internet'), 'resolver', resolverArgs(t.internet.resolver), stateDir),
    listen: [`${t.internet.resolver}:53`],
  });
  // another public resolver, which answers every name with one address of its own:
  // a guest that gets this answer got around the appliance's DNS
  services.push({
    // without the hosts file: dnsmasq answers hosts entries before --address, and then
    // this resolver would answer the lab's names like the real one
    ...spawnIn(
      ns('internet'),
      'alt-resolver',
      [
        ...resolverArgs(t.internet.altResolver).filter((a) => !a.startsWith('--addn-hosts=')),
        `--address=/#/${ALT_RESOLVER_ANSWER}`,
      ],
      stateDir,
    ),
    listen: [`${t.internet.altResolver}:53`],
  });
  const tsx = join(REPO, 'node_modules', 'tsx', 'dist', 'esm', 'index.mjs');
  services.push({
    ...spawnIn(
      ns('internet'),
      'web',
      [
        'node',
        '--import',
        tsx,
        join(HERE, 'internet-server.ts'),
        '--log',
        join(stateDir, 'internet-requests.jsonl'),
        '--cert',
        cert,
        '--key',
        key,
      ],
      stateDir,
    ),
    listen: ['0.0.0.0:80', '0.0.0.0:443', '0.0.0.0:9000'],
  });
  services.push({
    ...spawnIn(
      ns('internet'),
      'vendor',
      [
        'node',
        '--import',
        tsx,
        join(HERE, 'vendor-server.ts'),
        '--root',
        vendor.repo,
        '--cert',
        vendorCert.crt,
        '--key',
        vendorCert.key,
        '--listen',
        vendorAddress(t),
        '--port',
        String(VENDOR_PORT),
        '--log',
        join(stateDir, 'vendor-requests.jsonl'),
      ],
      stateDir,
    ),
    listen: [`${vendorAddress(t)}:${VENDOR_PORT}`],
  });

  writeFileSync(join(stateDir, 'policy.yaml'), toYaml(labPolicy(t)));
  // the lab's stand-ins for a DoH provider and a Tor relay, as a bundle would list them
  writeFileSync(join(stateDir, 'lab-doh-addresses.txt'), `${t.internet.doh}\n`);
  writeFileSync(join(stateDir, 'lab-tor-relays.txt'), `${t.internet.torRelay}\n`);
  writeFileSync(join(stateDir, 'secvm.yaml'), toYaml(labServiceConfig(t, stateDir)));
  const mgmtAddr = t.mgmt.secvm.split('/')[0]!;
  const state: LabState = {
    stateDir,
    topologyFile: options.topologyFile,
    namespaces: nsList,
    services,
    // the service speaks TLS on its management listener (a self-signed certificate)
    api: { mgmt: `https://${mgmtAddr}:${t.api.port}`, local: `https://127.0.0.1:${t.api.localPort}` },
    auth: await labLogins(stateDir),
    startedAt: new Date().toISOString(),
  };
  writeState(state);

  if (options.service !== false) {
    say('secvm: portcullis serve');
    const service = startService(state, options.serviceEnv);
    services.push(service);
    writeState(state);
    // a start takes 5–15 s; a loaded 2-core CI machine has needed more than 60
    await waitFor(
      'the portcullis API in secvm',
      () => tcpOpen(ns('host'), mgmtAddr, t.api.port),
      120_000,
      service,
    );
    await waitFor(
      'the DNS filter and DHCP in secvm',
      () => tcpOpen(ns('secvm'), t.lan.gateway, 53),
      60_000,
      service,
    );
    say('guests: DHCP');
    for (const g of t.guests) dhcp(g.name);
  }
  await waitFor('the web server in internet', () => tcpOpen(ns('internet'), t.internet.web, 80), 30_000);

  say(`management API forwarded to ${state.api.local}`);
  services.push({
    ...spawnIn(
      'root',
      'api-forward',
      [
        'socat',
        `TCP-LISTEN:${t.api.localPort},bind=127.0.0.1,reuseaddr,fork`,
        `EXEC:ip netns exec ${ns('host')} socat STDIO TCP\\:${mgmtAddr}\\:${t.api.port}`,
      ],
      stateDir,
    ),
    listen: [`127.0.0.1:${t.api.localPort}`],
  });
  writeState(state);
  log.info({ stateDir }, 'lab is up');
  return state;
}

/** Take a DHCP lease in a guest namespace (one-shot busybox udhcpc). */
export function dhcp(guest: string): void {
  run('ip', [
    'netns',
    'exec',
    ns(guest),
    'busybox',
    'udhcpc',
    '-i',
    'eth0',
    '-n',
    '-q',
    '-f',
    '-t',
    '10',
    '-T',
    '1',
    '-s',
    join(HERE, 'udhcpc.sh'),
  ]);
}

/**
 * Shell commands that mount, in the mount namespace `ip netns exec` makes, the cgroup
 * hierarchy of the cpu controller this machine has: `ip netns exec` mounts a fresh /sys
 * without the cgroup mounts under it, where the security VM has them (systemd mounts
 * them), and the service finds its idle CPU class for rule reloads there
 * (gateway/src/process/idle-cpu.ts). A v1 cpu hierarchy is mounted again with its own
 * controllers (the same hierarchy, not a new one); a v2 machine gets its cgroup2 root.
 * Empty when the machine has neither. Pure.
 */
export function cgroupMounts(mountinfo: string): string {
  for (const m of parseMountinfo(mountinfo)) {
    const controllers = m.superOptions.filter((o) => o !== 'rw' && o !== 'ro');
    if (m.fstype === 'cgroup' && controllers.includes('cpu') && m.mountPoint.startsWith('/sys/fs/cgroup/'))
      return (
        'mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup && ' +
        `mkdir -p '${m.mountPoint}' && mount -t cgroup -o ${controllers.join(',')} cgroup '${m.mountPoint}'`
      );
    if (m.fstype === 'cgroup2' && m.mountPoint === '/sys/fs/cgroup')
      return 'mount -t cgroup2 cgroup2 /sys/fs/cgroup';
  }
  return '';
}

/** Start (or restart) `portcullis serve` in secvm. */
export function startService(state: LabState, env: Record<string, string> = {}): LabService {
  const argv = [
    join(REPO, 'gateway', 'bin', 'portcullis'),
    'serve',
    '--config',
    join(state.stateDir, 'secvm.yaml'),
  ];
  const mounts = cgroupMounts(readFileSync('/proc/self/mountinfo', 'utf8'));
  // a mount that fails leaves the service without the idle class (it says so), not without a start
  const svc = spawnIn(
    ns('secvm'),
    'portcullis',
    mounts ? ['sh', '-c', `{ ${mounts}; } || true; exec "$@"`, 'sh', ...argv] : argv,
    state.stateDir,
    env,
  );
  const i = state.services.findIndex((s) => s.name === 'portcullis');
  const entry = {
    ...svc,
    listen: [state.api.mgmt.replace(/^https?:\/\//, ''), 'lan0:53', 'lan0:67', 'lan0:80'],
  };
  if (i >= 0) state.services[i] = entry;
  return entry;
}

/** Take the lab down: every process in its namespaces, the namespaces, the forwarder. */
export async function labDown(options: { stateDir?: string; topology?: LabTopology } = {}): Promise<void> {
  const stateDir = options.stateDir ?? DEFAULT_STATE_DIR;
  const state = readState(stateDir);
  // the namespaces this lab built; without a state file, those its topology would build
  const nsList = new Set(state?.namespaces ?? (options.topology ? namespaces(options.topology) : []));
  const existing = new Set(
    run('ip', ['netns', 'list'])
      .split('\n')
      .map((l) => l.split(' ')[0]!)
      .filter(Boolean),
  );
  const pids = new Set<number>();
  for (const s of state?.services ?? []) pids.add(s.pid);
  for (const ns of nsList) {
    if (!existing.has(ns)) continue;
    for (const p of run('ip', ['netns', 'pids', ns]).split('\n').filter(Boolean)) pids.add(Number(p));
  }
  for (const pid of pids) signal(pid, 'SIGTERM');
  const until = Date.now() + 3000;
  while ([...pids].some(alive) && Date.now() < until) await sleep(50);
  for (const pid of pids) signal(pid, 'SIGKILL');
  for (const ns of nsList) {
    if (existing.has(ns)) run('ip', ['netns', 'del', ns]);
    rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
  }
  rmSync(stateDir, { recursive: true, force: true });
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    // detached children lead their own process group: signal the whole group
    process.kill(-pid, sig);
  } catch {
    try {
      process.kill(pid, sig);
    } catch {
      /* gone */
    }
  }
}

/** What `lab status --json` prints. */
export interface LabStatus {
  readonly up: boolean;
  readonly api?: LabState['api'];
  /** Who logs in with which password; the certificate's SHA-256 fingerprint once the service made it. */
  readonly login?: { readonly user: string; readonly password: string; readonly fingerprint?: string };
  readonly namespaces: Array<{
    name: string;
    exists: boolean;
    addresses: Array<{ iface: string; address: string }>;
  }>;
  readonly services: Array<LabService & { running: boolean }>;
}

export function labStatus(stateDir = DEFAULT_STATE_DIR): LabStatus {
  const state = readState(stateDir);
  if (!state) return { up: false, namespaces: [], services: [] };
  const existing = new Set(
    run('ip', ['netns', 'list'])
      .split('\n')
      .map((l) => l.split(' ')[0]!)
      .filter(Boolean),
  );
  const namespacesOut = state.namespaces.map((name) => {
    if (!existing.has(name)) return { name, exists: false, addresses: [] };
    const links = JSON.parse(ipn(name, '-j', 'addr', 'show')) as Array<{
      ifname: string;
      addr_info: Array<{ local: string; prefixlen: number; family: string; scope: string }>;
    }>;
    const addresses = links.flatMap((l) =>
      l.addr_info
        .filter((a) => a.scope !== 'host')
        .map((a) => ({ iface: l.ifname, address: `${a.local}/${a.prefixlen}` })),
    );
    return { name, exists: true, addresses };
  });
  let fingerprint: string | undefined;
  try {
    if (state.auth) fingerprint = certificateFingerprint(readFileSync(state.auth.cert, 'utf8'));
  } catch {
    // not made yet: the service makes it at its first start
  }
  return {
    up: true,
    api: state.api,
    ...(state.auth
      ? {
          login: {
            user: state.auth.user,
            password: state.auth.password,
            ...(fingerprint ? { fingerprint } : {}),
          },
        }
      : {}),
    namespaces: namespacesOut,
    services: state.services.map((s) => ({ ...s, running: alive(s.pid) })),
  };
}
