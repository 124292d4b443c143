import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { PortcullisError } from '../errors.js';

/**
 * Runs Suricata once over a capture, offline (`-r`), the way suricata-verify does:
 *
 *     suricata -r input.pcap -S test.rules -l OUTDIR -k none --runmode single \
 *         -c /etc/suricata/suricata.yaml --set unix-command.enabled=no [--simulate-ips]
 *
 * from the capture's directory. Suricata writes eve.json (and its other logs) into OUTDIR.
 */

/** The default Suricata configuration (Debian's, unmodified). */
export const DEFAULT_SURICATA_CONFIG = '/etc/suricata/suricata.yaml';

export interface OfflineRunOptions {
  /** Absolute path of the capture. */
  readonly pcap: string;
  /** Absolute path of the rules file (`-S`: the only rules loaded). */
  readonly rules: string;
  /** Existing, empty directory for Suricata's logs. */
  readonly outdir: string;
  /** Absolute path of suricata.yaml. Default {@link DEFAULT_SURICATA_CONFIG}. */
  readonly config?: string;
  /** `--simulate-ips`: drop rules drop, alerts say `blocked`. */
  readonly simulateIps?: boolean;
  /** The Suricata binary. Default `suricata` (from PATH). */
  readonly suricata?: string;
  /** Kill Suricata after this many ms. Default 600,000. */
  readonly timeoutMs?: number;
}

export interface OfflineRunResult {
  readonly args: readonly string[];
  readonly durationMs: number;
  /**
   * Errors Suricata reported but ran through (`E: ...` lines: a rule that did not
   * parse, a bad packet). Worth showing: a rule that failed to load alerts on nothing.
   */
  readonly errors: readonly string[];
}

/** The arguments of one offline run. */
export function suricataArgs(o: OfflineRunOptions): string[] {
  const args = [
    '-r',
    o.pcap,
    '-S',
    o.rules,
    '-l',
    o.outdir,
    '-k',
    'none',
    '--runmode',
    'single',
    '-c',
    o.config ?? DEFAULT_SURICATA_CONFIG,
    '--set',
    'unix-command.enabled=no',
  ];
  if (o.simulateIps) args.push('--simulate-ips');
  return args;
}

const KEEP_OUTPUT_BYTES = 64 * 1024;

/**
 * Run Suricata to completion. Rejects with SURICATA_FAILED when it cannot be started,
 * exits non-zero, is killed, or times out; the message carries Suricata's own errors.
 */
export async function runSuricataOffline(o: OfflineRunOptions): Promise<OfflineRunResult> {
  const bin = o.suricata ?? 'suricata';
  const args = suricataArgs(o);
  const started = Date.now();
  const timeoutMs = o.timeoutMs ?? 600_000;
  const { code, signal, output, timedOut } = await new Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
    output: string;
    timedOut: boolean;
  }>((resolve, reject) => {
    const child = spawn(bin, args, { cwd: dirname(o.pcap), stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
      if (output.length > KEEP_OUTPUT_BYTES) output = output.slice(-KEEP_OUTPUT_BYTES);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 5000).unref();
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(
        new PortcullisError('SURICATA_FAILED', `cannot run ${bin}: ${err.message}; is Suricata installed?`, {
          cause: err,
        }),
      );
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, output, timedOut });
    });
  });
  if (code === 0) return { args, durationMs: Date.now() - started, errors: errorLines(output) };
  const log = await readFile(join(o.outdir, 'suricata.log'), 'utf8').catch(() => '');
  const errors = suricataErrors(`${output}\n${log}`);
  const how = timedOut
    ? `timed out after ${timeoutMs} ms`
    : signal
      ? `was killed by ${signal}`
      : `exited with code ${code}`;
  throw new PortcullisError(
    'SURICATA_FAILED',
    `suricata ${how}${errors ? `: ${errors}` : ''} (command: ${bin} ${args.join(' ')})`,
    {
      context: { code, signal, output: output.slice(-4000) },
    },
  );
}

function errorLines(text: string): string[] {
  const lines = text.split('\n').map((l) => l.trim());
  return [...new Set(lines.filter((l) => /^E: /.test(l) || / Error: /.test(l)))];
}

/** Suricata's error lines, deduplicated, at most five; else its last lines. */
function suricataErrors(text: string): string {
  const errors = errorLines(text);
  const picked =
    errors.length > 0
      ? errors.slice(0, 5)
      : text
          .split('\n')
          .map((l) => l.trim())
          .filter((l) => l.length > 0)
          .slice(-3);
  return picked.join(' | ');
}
