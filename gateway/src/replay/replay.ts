import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { access, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ActionEngine, type Decision } from '../actions/engine.js';
import {
  BUILTIN_ALERT_ACTIONS,
  DEFAULT_ALERT_ACTIONS,
  parseAlertActions,
  type AlertActions,
} from '../actions/model.js';
import { PortcullisError } from '../errors.js';
import { LeaseTable, PrivateNetworkResolver, type VmResolver } from '../suricata/eve/leases.js';
import { LineSplitter } from '../suricata/eve/lines.js';
import { parseEveLine, type EveParseError } from '../suricata/eve/parse.js';
import { EvePipeline, EventTimeClock } from '../suricata/eve/pipeline.js';
import { runSuricataOffline } from './suricata.js';

/**
 * Offline replay: run Suricata over a capture, then read its eve.json through the same
 * line framing, parser and pipeline (VM mapping, action engine) the service runs on
 * live EVE, and summarise. Nothing is carried out: decisions are listed.
 */

/** What a replay found. `JSON.stringify` of it is what `portcullis replay` prints. */
export interface ReplaySummary {
  /** Events by Suricata's `event_type`. */
  readonly events: Record<string, number>;
  readonly parse_errors: number;
  readonly alerts: { readonly total: number; readonly by_sid: Record<string, number> };
  /** Alerts whose packet was dropped (`alert.action` = `blocked`: IPS mode, drop/reject rules). */
  readonly drops: { readonly total: number; readonly by_sid: Record<string, number> };
  /** The engine's decisions other than `record`, in order. */
  readonly actions: readonly Exclude<Decision, { kind: 'record' }>[];
  /** `record` decisions: one per alert. */
  readonly recorded: number;
}

export interface SummariseOptions {
  /** Alert actions of the profile. Default {@link DEFAULT_ALERT_ACTIONS}. */
  readonly actions?: AlertActions;
  /** Maps addresses to VMs. Default: every private address is the VM `replay`. */
  readonly resolver?: VmResolver;
  /** Write every parsed event here, one JSON object a line (Suricata's own object). */
  readonly eventsFile?: string;
  /** Called with each rejected line. */
  readonly onParseError?: (error: EveParseError) => void;
}

export interface ReplayOptions extends SummariseOptions {
  readonly pcap: string;
  readonly rules: string;
  readonly simulateIps?: boolean;
  /** suricata.yaml; default /etc/suricata/suricata.yaml. */
  readonly suricataConfig?: string;
  /** Suricata binary; default `suricata`. */
  readonly suricata?: string;
  /** Keep Suricata's output in this (existing, empty) directory instead of a temporary one. */
  readonly outdir?: string;
  /** Kill Suricata after this many ms. Default 600,000. */
  readonly timeoutMs?: number;
  /** Suricata's non-fatal error lines (a rule that did not load, ...), for the caller to show. */
  readonly onSuricataErrors?: (lines: readonly string[]) => void;
}

/** The VM name the default resolver gives every private address. */
export const REPLAY_VM = 'replay';

/**
 * Replay `pcap` through Suricata with `rules` and summarise. The temporary output
 * directory is removed afterwards, also on failure. Rejects with REPLAY_FAILED when an
 * input is missing and SURICATA_FAILED when Suricata fails.
 */
export async function replayPcap(o: ReplayOptions): Promise<ReplaySummary> {
  const pcap = resolve(o.pcap);
  const rules = resolve(o.rules);
  const config = o.suricataConfig === undefined ? undefined : resolve(o.suricataConfig);
  for (const [what, file] of [
    ['capture', pcap],
    ['rules file', rules],
    ['Suricata configuration', config],
  ] as const) {
    if (file === undefined) continue;
    await access(file).catch((err: unknown) => {
      throw new PortcullisError(
        'REPLAY_FAILED',
        `${what} ${file} cannot be read: ${(err as Error).message}`,
        { cause: err },
      );
    });
  }
  const outdir =
    o.outdir === undefined ? await mkdtemp(join(tmpdir(), 'portcullis-replay-')) : resolve(o.outdir);
  try {
    const run = await runSuricataOffline({
      pcap,
      rules,
      outdir,
      config,
      simulateIps: o.simulateIps,
      suricata: o.suricata,
      timeoutMs: o.timeoutMs,
    });
    if (run.errors.length > 0) o.onSuricataErrors?.(run.errors);
    return await summariseEveFile(join(outdir, 'eve.json'), o);
  } finally {
    if (o.outdir === undefined) await rm(outdir, { recursive: true, force: true });
  }
}

/**
 * Read an eve.json through the service's line framing, parser and pipeline and
 * summarise it; optionally write each parsed event back out.
 */
export async function summariseEveFile(eveFile: string, o: SummariseOptions = {}): Promise<ReplaySummary> {
  const clock = new EventTimeClock();
  const engine = ActionEngine.withActions(o.actions ?? DEFAULT_ALERT_ACTIONS, clock.now);
  const pipeline = new EvePipeline({
    resolver: o.resolver ?? new PrivateNetworkResolver(REPLAY_VM),
    engine,
    eventClock: clock,
  });

  const events: Record<string, number> = {};
  const alertsBySid: Record<string, number> = {};
  const dropsBySid: Record<string, number> = {};
  const actions: Exclude<Decision, { kind: 'record' }>[] = [];
  let alerts = 0;
  let drops = 0;
  let parseErrors = 0;
  let recorded = 0;
  const out = o.eventsFile === undefined ? undefined : new EventWriter(o.eventsFile);

  const reject = (error: EveParseError): void => {
    parseErrors += 1;
    o.onParseError?.(error);
  };
  const onLine = (line: string): void => {
    const r = parseEveLine(line);
    if (!r.ok) return reject(r.error);
    const ev = r.event;
    const type = ev.raw.event_type;
    events[type] = (events[type] ?? 0) + 1;
    if (ev.event_type === 'alert') {
      const sid = String(ev.raw.alert.signature_id);
      alerts += 1;
      alertsBySid[sid] = (alertsBySid[sid] ?? 0) + 1;
      if (ev.raw.alert.action === 'blocked') {
        drops += 1;
        dropsBySid[sid] = (dropsBySid[sid] ?? 0) + 1;
      }
    }
    for (const d of pipeline.handle(ev).decisions) {
      if (d.kind === 'record') recorded += 1;
      else actions.push(d);
    }
    out?.write(JSON.stringify(ev.raw));
  };

  const splitter = new LineSplitter({
    line: onLine,
    overlong: (bytes) =>
      reject({
        code: 'EVE_MALFORMED',
        reason: 'too-long',
        path: '',
        message: `line of ${bytes} bytes exceeds the limit`,
        sample: '',
      }),
  });
  try {
    for await (const chunk of createReadStream(eveFile, { highWaterMark: 1024 * 1024 })) {
      splitter.push(chunk as Buffer);
      await out?.drained();
    }
    // Suricata ends every line; a last unterminated one is still an event if it parses.
    const rest = splitter.end();
    if (rest !== undefined && rest.trim().length > 0) onLine(rest);
  } catch (err) {
    await out?.close().catch(() => undefined);
    if (err instanceof PortcullisError) throw err;
    throw new PortcullisError('REPLAY_FAILED', `cannot read ${eveFile}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  await out?.close();
  return {
    events,
    parse_errors: parseErrors,
    alerts: { total: alerts, by_sid: alertsBySid },
    drops: { total: drops, by_sid: dropsBySid },
    actions,
    recorded,
  };
}

/** Lines to a file, with backpressure. */
class EventWriter {
  readonly #path: string;
  readonly #stream: WriteStream;
  #batch: string[] = [];
  #error: Error | undefined;

  constructor(path: string) {
    this.#path = path;
    this.#stream = createWriteStream(path);
    this.#stream.on('error', (err) => {
      this.#error = err;
    });
  }

  write(line: string): void {
    this.#batch.push(line);
  }

  /** Flush the batch; wait while the stream is over its buffer. */
  async drained(): Promise<void> {
    this.#check();
    if (this.#batch.length === 0) return;
    const text = `${this.#batch.join('\n')}\n`;
    this.#batch = [];
    if (!this.#stream.write(text)) await new Promise<void>((resolve) => this.#stream.once('drain', resolve));
    this.#check();
  }

  async close(): Promise<void> {
    await this.drained();
    await new Promise<void>((resolve, reject) =>
      this.#stream.end((err?: Error | null) => (err ? reject(err) : resolve())),
    );
    this.#check();
  }

  #check(): void {
    if (this.#error)
      throw new PortcullisError(
        'REPLAY_FAILED',
        `cannot write events to ${this.#path}: ${this.#error.message}`,
        { cause: this.#error },
      );
  }
}

/**
 * Alert actions from `--profile`: a built-in profile name, or a JSON file holding
 * either alert actions or a profile with an `alertActions` member.
 */
export async function loadAlertActions(spec: string): Promise<AlertActions> {
  const builtin = BUILTIN_ALERT_ACTIONS[spec];
  if (builtin !== undefined) return builtin;
  let text: string;
  try {
    text = await readFile(spec, 'utf8');
  } catch (err) {
    throw new PortcullisError(
      'PROFILE_NOT_FOUND',
      `profile "${spec}" is neither a built-in profile (${Object.keys(BUILTIN_ALERT_ACTIONS).join(', ')}) nor a readable file: ${(err as Error).message}`,
      { cause: err },
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new PortcullisError('CONFIG_INVALID', `${spec} is not JSON: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const inner =
    typeof value === 'object' && value !== null && 'alertActions' in value
      ? (value as { alertActions: unknown }).alertActions
      : value;
  return parseAlertActions(inner, `alert actions in ${spec}`);
}

/**
 * Leases from a JSON file: `[{"vm": "kid", "address": "10.0.0.2", "from"?: ISO, "until"?: ISO}]`.
 */
export async function loadLeases(file: string): Promise<LeaseTable> {
  let value: unknown;
  try {
    value = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new PortcullisError(
      'CONFIG_INVALID',
      `cannot read leases from ${file}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  if (!Array.isArray(value))
    throw new PortcullisError(
      'CONFIG_INVALID',
      `${file}: expected a JSON array of {vm, address, from?, until?}`,
    );
  const table = new LeaseTable();
  value.forEach((entry: unknown, i) => {
    const e = entry as { vm?: unknown; address?: unknown; from?: unknown; until?: unknown };
    if (typeof e?.vm !== 'string' || typeof e.address !== 'string') {
      throw new PortcullisError('CONFIG_INVALID', `${file}: entry ${i} needs string "vm" and "address"`, {
        path: `/${i}`,
      });
    }
    const time = (v: unknown, key: string): number | undefined => {
      if (v === undefined) return undefined;
      const t = typeof v === 'string' ? Date.parse(v) : Number.NaN;
      if (Number.isNaN(t))
        throw new PortcullisError(
          'CONFIG_INVALID',
          `${file}: entry ${i}: "${key}" must be an ISO 8601 date`,
          { path: `/${i}/${key}` },
        );
      return t;
    };
    table.add({ vm: e.vm, address: e.address, from: time(e.from, 'from'), until: time(e.until, 'until') });
  });
  return table;
}
