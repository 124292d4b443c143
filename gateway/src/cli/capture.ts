import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { CaptureInfo } from '../capture/service.js';
import {
  apiCommand,
  clientFor,
  group,
  usage,
  type ApiCommandOptions,
  type CliContext,
} from './api-commands.js';
import { asJson, table } from './output.js';

interface StartOptions extends ApiCommandOptions {
  readonly vm?: string;
  readonly alert?: string;
  readonly seconds?: string;
  readonly maxBytes?: string;
  readonly output?: string;
}

interface GetOptions extends ApiCommandOptions {
  readonly output: string;
}

/** Between two looks at a running capture, ms. */
const POLL_MS = 1000;

function integer(value: string | undefined, option: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[0-9]+$/.test(value)) throw usage(`${value} is not a whole number`, option);
  return Number(value);
}

/**
 * `portcullis capture start|list|get|rm`: packet captures through the API (an admin
 * token): of a VM for some seconds, or of an alert's flow; `start -o file` waits for
 * the end and downloads the pcap.
 */
export function registerCaptureCommands(program: Command, ctx: CliContext): void {
  const capture = group(program, 'capture', 'packet captures of a VM or an alert flow, as pcap (admins)');

  apiCommand(
    capture,
    'start',
    'start a capture of a VM (--vm, --seconds) or of an alert flow (--alert)',
    true,
  )
    .option('--vm <name>', 'the VM to capture')
    .option('--alert <id>', 'capture the flow of this alert of the alert log instead')
    .option('--seconds <n>', 'how long, seconds (default 60 for --alert)')
    .option('--max-bytes <n>', 'stop at this file size, bytes (default: the service limit)')
    .option('-o, --output <file>', 'wait for the end and write the pcap here')
    .action(async (opts: StartOptions) => {
      if ((opts.vm === undefined) === (opts.alert === undefined))
        throw usage('give either --vm or --alert', opts.vm === undefined ? '--vm' : '--alert');
      const seconds = integer(opts.seconds, '--seconds');
      if (opts.vm !== undefined && seconds === undefined) throw usage('say how long', '--seconds');
      const maxBytes = integer(opts.maxBytes, '--max-bytes');
      const client = clientFor(opts, ctx);
      const body =
        opts.vm !== undefined
          ? { vm: opts.vm, seconds, ...(maxBytes !== undefined ? { maxBytes } : {}) }
          : {
              alertId: integer(opts.alert, '--alert'),
              ...(seconds !== undefined ? { seconds } : {}),
              ...(maxBytes !== undefined ? { maxBytes } : {}),
            };
      let info = await client.post<CaptureInfo>('/captures', body);
      if (opts.output !== undefined) {
        while (info.state === 'running') {
          await new Promise((r) => setTimeout(r, POLL_MS));
          info = await client.get<CaptureInfo>(`/captures/${info.id}`);
        }
        writeFileSync(opts.output, await client.bytes(`/captures/${info.id}.pcap`));
      }
      ctx.io.out(opts.json ? asJson(info) : `${info.id} ${info.state} (${info.iface}: ${info.filter})\n`);
    });

  apiCommand(capture, 'list', 'the captures kept, newest first').action(async (opts: ApiCommandOptions) => {
    const list = await clientFor(opts, ctx).get<CaptureInfo[]>('/captures');
    if (opts.json) return ctx.io.out(asJson(list));
    ctx.io.out(
      table(list, [
        ['ID', (c) => c.id],
        ['VM', (c) => c.vm],
        ['STATE', (c) => c.state],
        ['SECONDS', (c) => c.seconds],
        ['PACKETS', (c) => c.packets],
        ['BYTES', (c) => c.bytes],
        ['REASON', (c) => c.reason],
      ]),
    );
  });

  apiCommand(capture, 'get <id>', "download a finished capture's pcap")
    .requiredOption('-o, --output <file>', 'the pcap file to write')
    .action(async (id: string, opts: GetOptions) => {
      const pcap = await clientFor(opts, ctx).bytes(`/captures/${encodeURIComponent(id)}.pcap`);
      writeFileSync(opts.output, pcap);
      ctx.io.out(`${opts.output}: ${pcap.length} bytes\n`);
    });

  apiCommand(capture, 'rm <id>', 'stop a capture if it runs, and delete it', true).action(
    async (id: string, opts: ApiCommandOptions) => {
      await clientFor(opts, ctx).delete(`/captures/${encodeURIComponent(id)}`);
      ctx.io.out(`deleted ${id}\n`);
    },
  );
}
