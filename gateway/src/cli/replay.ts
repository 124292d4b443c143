import type { Command } from 'commander';
import { createLogger } from '../log.js';
import { DEFAULT_SURICATA_CONFIG } from '../replay/suricata.js';
import { loadAlertActions, loadLeases, replayPcap } from '../replay/replay.js';

interface ReplayFlags {
  readonly rules: string;
  readonly simulateIps?: boolean;
  readonly suricataConfig?: string;
  readonly events?: string;
  readonly profile?: string;
  readonly leases?: string;
  readonly outdir?: string;
  readonly suricata?: string;
}

/** `portcullis replay <pcap> --rules <file> ...`: offline replay through Suricata; prints one JSON summary. */
export function registerReplay(program: Command): void {
  program
    .command('replay')
    .description(
      'run a capture through Suricata offline and print, as JSON, the events, alerts, drops and the actions the gateway would take',
    )
    .argument('<pcap>', 'the capture (pcap)')
    .requiredOption('--rules <file>', 'Suricata rules file; the only rules loaded')
    .option('--simulate-ips', 'run Suricata as an IPS (drop rules drop)')
    .option('--suricata-config <file>', `suricata.yaml to use (default ${DEFAULT_SURICATA_CONFIG})`)
    .option(
      '--events <file>',
      "also write every parsed event, one JSON object a line, in Suricata's field names",
    )
    .option(
      '--profile <name|file>',
      'alert actions: a built-in profile name (open, internet-only, work, kid, quarantine) or a JSON file',
    )
    .option(
      '--leases <file>',
      'JSON [{vm, address, from?, until?}]; default: every private address is the VM "replay"',
    )
    .option('--outdir <dir>', "keep Suricata's output in this existing, empty directory")
    .option('--suricata <path>', 'the Suricata binary', 'suricata')
    .action(async (pcap: string, flags: ReplayFlags) => {
      const log = createLogger('replay');
      const summary = await replayPcap({
        pcap,
        rules: flags.rules,
        simulateIps: flags.simulateIps === true,
        suricataConfig: flags.suricataConfig,
        eventsFile: flags.events,
        actions: flags.profile === undefined ? undefined : await loadAlertActions(flags.profile),
        resolver: flags.leases === undefined ? undefined : await loadLeases(flags.leases),
        outdir: flags.outdir,
        suricata: flags.suricata,
        onSuricataErrors: (lines) =>
          log.warn({ errors: lines }, `Suricata reported ${lines.length} error(s) but ran to the end`),
        onParseError: (e) =>
          log.warn({ reason: e.reason, path: e.path, sample: e.sample }, `EVE line rejected: ${e.message}`),
      });
      process.stdout.write(`${JSON.stringify(summary)}\n`);
    });
}
