import type { Command } from 'commander';
import {
  DEFAULT_STATE_DIR,
  DEFAULT_TOPOLOGY,
  labDown,
  labStatus,
  labUp,
  readState,
  setInternetHosts,
} from '../../../appliance/lab/builder.js';
import { loadTopology } from '../../../appliance/lab/topology.js';
import { PortcullisError } from '../errors.js';

/** `portcullis lab up | down | status`: the namespace lab of ARCHITECTURE.md. */
export function registerLabCommands(program: Command): void {
  const lab = program
    .command('lab')
    .description('the lab: the production topology in network namespaces (root)');

  lab
    .command('up')
    .description('build the lab and start the service in secvm (takes a lab that is up down first)')
    .option('--topology <file>', 'lab topology YAML', DEFAULT_TOPOLOGY)
    .option('--state-dir <dir>', 'where the lab keeps its state', DEFAULT_STATE_DIR)
    .option('--no-service', 'build the network only; do not start portcullis')
    .action(async (opts: { topology: string; stateDir: string; service: boolean }) => {
      const topology = loadTopology(opts.topology);
      const state = await labUp({
        topology,
        topologyFile: opts.topology,
        stateDir: opts.stateDir,
        service: opts.service,
        progress: (line) => process.stderr.write(`lab: ${line}\n`),
      });
      process.stdout.write(
        [
          'The lab is up.',
          `  dashboard and API: ${state.api.local}/  (management side: ${state.api.mgmt})`,
          `  metrics:           ${state.api.local}/metrics`,
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
    .option('--topology <file>', 'lab topology YAML', DEFAULT_TOPOLOGY)
    .option('--state-dir <dir>', 'where the lab keeps its state', DEFAULT_STATE_DIR)
    .action(async (opts: { topology: string; stateDir: string }) => {
      await labDown({ stateDir: opts.stateDir, topology: loadTopology(opts.topology) });
      process.stdout.write('The lab is down.\n');
    });

  lab
    .command('status')
    .description('namespaces with their addresses and the services running there')
    .option('--json', 'machine-readable')
    .option('--state-dir <dir>', 'where the lab keeps its state', DEFAULT_STATE_DIR)
    .action((opts: { json?: boolean; stateDir: string }) => {
      const status = labStatus(opts.stateDir);
      if (opts.json) {
        process.stdout.write(JSON.stringify(status, null, 2) + '\n');
        return;
      }
      if (!status.up) {
        process.stdout.write('The lab is down. Bring it up with: portcullis lab up\n');
        return;
      }
      process.stdout.write(`API: ${status.api?.local} (management: ${status.api?.mgmt})\n`);
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
    .command('dns-set')
    .description("change an answer of the lab's public resolver (name → IPv4)")
    .argument('<name>')
    .argument('<ipv4>')
    .option('--state-dir <dir>', 'where the lab keeps its state', DEFAULT_STATE_DIR)
    .action((name: string, ip: string, opts: { stateDir: string }) => {
      const state = readState(opts.stateDir);
      if (!state)
        throw new PortcullisError('LAB_FAILED', 'the lab is down; bring it up with: portcullis lab up');
      const topology = loadTopology(state.topologyFile);
      setInternetHosts({ ...topology.internet.hosts, [name]: ip }, opts.stateDir);
    });
}
