import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import { PortcullisError } from '../errors.js';

/**
 * The lab's modules, loaded when a lab command runs: the service (`portcullis serve`)
 * and the other commands never load the lab.
 */
async function loadLab() {
  const [builder, topology] = await Promise.all([
    import('../../../appliance/lab/builder.js'),
    import('../../../appliance/lab/topology.js'),
  ]);
  return { ...builder, loadTopology: topology.loadTopology };
}

const TOPOLOGY_HELP = 'lab topology YAML (default: appliance/lab/lab.yaml)';
const STATE_DIR_HELP = 'where the lab keeps its state (default: $PORTCULLIS_LAB_DIR or /run/portcullis-lab)';

/** `portcullis lab up | down | status | dns-set`: the production topology in network namespaces. */
export function registerLabCommands(program: Command): void {
  const lab = program
    .command('lab')
    .description('the lab: the production topology in network namespaces (root)');

  lab
    .command('up')
    .description('build the lab and start the service in secvm (takes a lab that is up down first)')
    .option('--topology <file>', TOPOLOGY_HELP)
    .option('--state-dir <dir>', STATE_DIR_HELP)
    .option('--no-service', 'build the network only; do not start portcullis')
    .action(async (opts: { topology?: string; stateDir?: string; service: boolean }) => {
      const lab = await loadLab();
      const topologyFile = opts.topology ?? lab.DEFAULT_TOPOLOGY;
      const state = await lab.labUp({
        topology: lab.loadTopology(topologyFile),
        topologyFile,
        stateDir: opts.stateDir ?? lab.DEFAULT_STATE_DIR,
        service: opts.service,
        progress: (line) => process.stderr.write(`lab: ${line}\n`),
      });
      process.stdout.write(
        [
          'The lab is up.',
          `  dashboard and API: ${state.api.local}/  (management side: ${state.api.mgmt})`,
          ...loginLines(state.auth),
          `  metrics:           ${state.api.local}/metrics (with a viewer token: portcullis lab token --role viewer)`,
          `  a guest's shell:   ip netns exec kid bash`,
          `  status:            portcullis lab status`,
          `  take it down:      portcullis lab down`,
          '',
        ].join('\n'),
      );
    });

  lab
    .command('down')
    .description('stop every lab process and remove the namespaces')
    .option('--topology <file>', TOPOLOGY_HELP)
    .option('--state-dir <dir>', STATE_DIR_HELP)
    .action(async (opts: { topology?: string; stateDir?: string }) => {
      const lab = await loadLab();
      await lab.labDown({
        stateDir: opts.stateDir ?? lab.DEFAULT_STATE_DIR,
        topology: lab.loadTopology(opts.topology ?? lab.DEFAULT_TOPOLOGY),
      });
      process.stdout.write('The lab is down.\n');
    });

  lab
    .command('status')
    .description('namespaces with their addresses and the services running there')
    .option('--json', 'machine-readable')
    .option('--state-dir <dir>', STATE_DIR_HELP)
    .action(async (opts: { json?: boolean; stateDir?: string }) => {
      const lab = await loadLab();
      const status = lab.labStatus(opts.stateDir ?? lab.DEFAULT_STATE_DIR);
      if (opts.json) {
        process.stdout.write(JSON.stringify(status, null, 2) + '\n');
        return;
      }
      if (!status.up) {
        process.stdout.write('The lab is down. Bring it up with: portcullis lab up\n');
        return;
      }
      process.stdout.write(`API: ${status.api?.local} (management: ${status.api?.mgmt})\n`);
      if (status.login) {
        process.stdout.write(
          `Log in: user ${status.login.user}, password ${status.login.password}` +
            ` (self-signed certificate${status.login.fingerprint ? `, SHA-256 ${status.login.fingerprint}` : ''})\n`,
        );
      }
      for (const ns of status.namespaces) {
        process.stdout.write(
          `${ns.name.padEnd(10)} ${ns.exists ? ns.addresses.map((a) => `${a.iface}=${a.address}`).join(' ') : '(missing)'}\n`,
        );
      }
      for (const s of status.services) {
        process.stdout.write(
          `  ${s.running ? 'running' : 'STOPPED'} ${s.ns}/${s.name} pid ${s.pid} ${s.listen.join(' ')}\n`,
        );
      }
    });

  lab
    .command('token')
    .description("create an API token in the lab service's store and print it")
    .requiredOption('--role <role>', 'admin, parent or viewer')
    .option('--name <name>', 'what it is for (default: lab-<role>-<random>)')
    .option('--people <names>', 'for a parent token: VM owners, comma-separated')
    .option('--state-dir <dir>', STATE_DIR_HELP)
    .action(async (opts: { role: string; name?: string; people?: string; stateDir?: string }) => {
      const lab = await loadLab();
      const stateDir = opts.stateDir ?? lab.DEFAULT_STATE_DIR;
      if (!lab.readState(stateDir))
        throw new PortcullisError('LAB_FAILED', 'the lab is down; bring it up with: portcullis lab up');
      const { Store } = await import('../store/store.js');
      const store = Store.open({ path: lab.labStorePath(stateDir) });
      try {
        const name = opts.name ?? `lab-${opts.role}-${randomBytes(3).toString('hex')}`;
        const people = (opts.people ?? '')
          .split(',')
          .map((p) => p.trim())
          .filter(Boolean);
        process.stdout.write(`${store.auth.createToken({ name, role: opts.role, people }, 'lab').token}\n`);
      } finally {
        store.close();
      }
    });

  lab
    .command('dns-set')
    .description("change an answer of the lab's public resolver (name → IPv4)")
    .argument('<name>')
    .argument('<ipv4>')
    .option('--state-dir <dir>', STATE_DIR_HELP)
    .action(async (name: string, ip: string, opts: { stateDir?: string }) => {
      const lab = await loadLab();
      const stateDir = opts.stateDir ?? lab.DEFAULT_STATE_DIR;
      const state = lab.readState(stateDir);
      if (!state)
        throw new PortcullisError('LAB_FAILED', 'the lab is down; bring it up with: portcullis lab up');
      const topology = lab.loadTopology(state.topologyFile);
      lab.setInternetHosts({ ...topology.internet.hosts, [name]: ip }, stateDir);
    });
}

/** How to log in to the lab's service, for `lab up`. */
function loginLines(auth: { user: string; password: string; cert: string } | undefined): string[] {
  if (!auth) return [];
  return [
    `  log in as:         ${auth.user} / ${auth.password}  (again: portcullis lab status)`,
    `  certificate:       ${auth.cert} (self-signed; the browser asks once)`,
    `  the CLI:           PORTCULLIS_API_CA=${auth.cert} PORTCULLIS_API_TOKEN=$(portcullis lab token --role admin)`,
  ];
}
