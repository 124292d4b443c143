import { connect, type Socket } from 'node:net';
import { PortcullisError } from '../errors.js';

/**
 * A client for Suricata's unix command socket (`unix-command` in suricata.yaml), the
 * protocol `suricatasc` speaks (version 0.2): the client sends `{"version": "0.2"}`,
 * then one `{"command": …, "arguments": {…}}`; every message in either direction is one
 * JSON object ending in a newline (Suricata closes the connection on a command without
 * one: "incomplete client message"). Each answer is `{"return": "OK"|"NOK", "message": …}`.
 *
 * One connection per command: commands are rare, and a connection never outlives a
 * Suricata restart. Transport problems (no socket, no answer, garbage) are
 * SURICATA_SOCKET; a NOK answer is SURICATA_COMMAND_REJECTED with Suricata's message.
 *
 * Commands of Suricata 7.0 used here (`command-list` lists all 38): `reload-rules`
 * (blocking; `ruleset-reload-rules` is the same), `ruleset-reload-nonblocking`,
 * `ruleset-reload-time`, `ruleset-stats`, `ruleset-failed-rules`, `dump-counters`,
 * `uptime`, `version`, `conf-get`.
 */

/** The protocol version this client speaks. */
export const PROTOCOL_VERSION = '0.2';

export interface SuricataControlOptions {
  /** Path of the command socket (`unix-command.filename`). */
  readonly path: string;
  /** How long one command may take, connect to answer, in ms. Default 5,000. */
  readonly timeoutMs?: number;
  /**
   * How long a blocking rule reload may take, in ms. Default 300,000: a full commercial
   * rule set takes tens of seconds to load on 2 cores.
   */
  readonly reloadTimeoutMs?: number;
  /** Longest answer accepted, in bytes. Default 16 MiB (`dump-counters` is ~30 KB). */
  readonly maxReplyBytes?: number;
}

/** Rule counts of one detection engine (tenant 0 is the default engine). */
export interface RulesetStats {
  readonly id: number;
  readonly rules_loaded: number;
  readonly rules_failed: number;
  readonly rules_skipped?: number;
}

/** A rule that failed to load. */
export interface FailedRule {
  readonly tenant_id?: number;
  /** The rule text. */
  readonly rule: string;
  readonly filename: string;
  readonly line: number;
}

/**
 * Suricata's counters (the same tree as the EVE `stats` event). Typed where the gateway
 * reads them; everything else is reachable as `unknown`.
 */
export interface SuricataCounters {
  readonly uptime?: number;
  readonly ips?: {
    readonly accepted?: number;
    readonly blocked?: number;
    readonly rejected?: number;
    readonly [k: string]: unknown;
  };
  readonly decoder?: { readonly pkts?: number; readonly bytes?: number; readonly [k: string]: unknown };
  readonly tcp?: {
    readonly sessions?: number;
    readonly stream_depth_reached?: number;
    readonly midstream_pickups?: number;
    readonly [k: string]: unknown;
  };
  /** Packets of bypassed flows Suricata still saw (`local_capture_*`: queued before the conntrack mark was saved). */
  readonly flow_bypassed?: {
    readonly local_pkts?: number;
    readonly local_bytes?: number;
    readonly local_capture_pkts?: number;
    readonly local_capture_bytes?: number;
    readonly closed?: number;
    readonly pkts?: number;
    readonly bytes?: number;
  };
  readonly detect?: { readonly alert?: number; readonly [k: string]: unknown };
  readonly [k: string]: unknown;
}

interface Reply {
  readonly return: 'OK' | 'NOK';
  readonly message?: unknown;
}

/** Commands waiting for Suricata's answer, by socket path (every client of one socket). */
const inFlight = new Map<string, Map<symbol, { readonly command: string; readonly since: number }>>();

/**
 * The commands some client of this process is waiting on at `path`, oldest first, with
 * when they were sent (ms since the epoch). Suricata answers one command at a time: a
 * blocking `reload-rules` holds the socket until the new rules are in force.
 */
export function commandsInFlight(
  path: string,
): ReadonlyArray<{ readonly command: string; readonly since: number }> {
  return [...(inFlight.get(path)?.values() ?? [])].sort((a, b) => a.since - b.since);
}

export class SuricataControl {
  readonly #path: string;
  readonly #timeoutMs: number;
  readonly #reloadTimeoutMs: number;
  readonly #maxReplyBytes: number;

  constructor(options: SuricataControlOptions) {
    this.#path = options.path;
    this.#timeoutMs = options.timeoutMs ?? 5000;
    this.#reloadTimeoutMs = options.reloadTimeoutMs ?? 300_000;
    this.#maxReplyBytes = options.maxReplyBytes ?? 16 * 1024 * 1024;
  }

  /** The socket path. */
  get path(): string {
    return this.#path;
  }

  /**
   * Run one command and return Suricata's `message`.
   * @param timeoutMs overrides the client's timeout for this command.
   */
  async command(
    command: string,
    args?: Record<string, unknown>,
    timeoutMs = this.#timeoutMs,
  ): Promise<unknown> {
    const request = args === undefined ? { command } : { command, arguments: args };
    const key = Symbol(command);
    const pending = inFlight.get(this.#path) ?? new Map();
    inFlight.set(this.#path, pending);
    pending.set(key, { command, since: Date.now() });
    let replies: Reply[];
    try {
      replies = await this.#exchange([{ version: PROTOCOL_VERSION }, request], command, timeoutMs);
    } finally {
      pending.delete(key);
      if (pending.size === 0) inFlight.delete(this.#path);
    }
    const [hello, reply] = replies;
    if (hello!.return !== 'OK') {
      throw new PortcullisError(
        'SURICATA_SOCKET',
        `Suricata at ${this.#path} refused protocol version ${PROTOCOL_VERSION}: ${describe(hello!.message)}`,
        {
          context: { command, reply: hello },
        },
      );
    }
    if (reply!.return !== 'OK') {
      const message = describe(reply!.message);
      throw new PortcullisError('SURICATA_COMMAND_REJECTED', `Suricata refused "${command}": ${message}`, {
        context: { command, message: reply!.message },
      });
    }
    return reply!.message;
  }

  /**
   * Reload the rule files. `blocking` (default): `reload-rules`, which answers when the
   * new rules are in force (up to `reloadTimeoutMs`); else `ruleset-reload-nonblocking`,
   * which answers at once (see {@link lastReload} to tell when it is done). A reload
   * while another runs is SURICATA_COMMAND_REJECTED ("Reload already in progress").
   * Rules that fail to parse do not fail the reload: check the returned counts and
   * {@link failedRules}.
   * @param options.timeoutMs how long a blocking reload may take, ms. Default the client's
   *   `reloadTimeoutMs` (see `ruleLoadTimeoutMs` in reload.ts for one by ruleset size).
   * @returns the rule counts after a blocking reload; before it for a non-blocking one.
   */
  async reloadRules(
    options: { readonly blocking?: boolean; readonly timeoutMs?: number } = {},
  ): Promise<readonly RulesetStats[]> {
    if (options.blocking ?? true)
      await this.command('reload-rules', undefined, options.timeoutMs ?? this.#reloadTimeoutMs);
    else await this.command('ruleset-reload-nonblocking');
    return this.rulesetStats();
  }

  /** Rules loaded, failed and skipped, per detection engine. */
  async rulesetStats(): Promise<readonly RulesetStats[]> {
    return expectArray<RulesetStats>(await this.command('ruleset-stats'), 'ruleset-stats');
  }

  /** The rules that failed to load in the last (re)load. */
  async failedRules(): Promise<readonly FailedRule[]> {
    return expectArray<FailedRule>(await this.command('ruleset-failed-rules'), 'ruleset-failed-rules');
  }

  /** When the rules in force were loaded, per detection engine (ISO-like, `+0000`). */
  async lastReload(): Promise<ReadonlyArray<{ readonly id: number; readonly last_reload: string }>> {
    return expectArray(await this.command('ruleset-reload-time'), 'ruleset-reload-time');
  }

  /**
   * All counters. Until the stats thread has run once (`stats.interval` seconds after
   * start) Suricata answers NOK "stats not yet synchronized". Counters of an idle worker
   * thread are only synchronised when it next handles a packet.
   */
  async dumpCounters(): Promise<SuricataCounters> {
    const message = await this.command('dump-counters');
    if (typeof message !== 'object' || message === null || Array.isArray(message))
      throw unexpected('dump-counters', message);
    return message as SuricataCounters;
  }

  /** Seconds since Suricata started. */
  async uptime(): Promise<number> {
    const message = await this.command('uptime');
    if (typeof message !== 'number') throw unexpected('uptime', message);
    return message;
  }

  /** Suricata's version, e.g. `7.0.10 RELEASE`. */
  async version(): Promise<string> {
    const message = await this.command('version');
    if (typeof message !== 'string') throw unexpected('version', message);
    return message;
  }

  /** A configuration value as Suricata sees it (`conf-get`), e.g. `stream.bypass`. */
  async confGet(variable: string): Promise<string> {
    const message = await this.command('conf-get', { variable });
    if (typeof message !== 'string') throw unexpected('conf-get', message);
    return message;
  }

  /** Whether Suricata answers `uptime`: false instead of an error. */
  async ping(timeoutMs = this.#timeoutMs): Promise<boolean> {
    try {
      await this.command('uptime', undefined, timeoutMs);
      return true;
    } catch {
      return false;
    }
  }

  /** Send each message once the answer to the one before has come; resolve with all answers. */
  #exchange(messages: readonly object[], command: string, timeoutMs: number): Promise<Reply[]> {
    const path = this.#path;
    return new Promise<Reply[]>((resolve, reject) => {
      const replies: Reply[] = [];
      let buffered = '';
      let settled = false;
      const socket: Socket = connect(path);
      const finish = (err: PortcullisError | undefined): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        if (err) reject(err);
        else resolve(replies);
      };
      const timer = setTimeout(() => {
        finish(
          new PortcullisError(
            'SURICATA_SOCKET',
            `Suricata did not answer "${command}" within ${timeoutMs} ms on ${path}; is it overloaded or stuck?`,
            {
              context: { command, timeoutMs },
            },
          ),
        );
      }, timeoutMs);
      const send = (): void => {
        socket.write(`${JSON.stringify(messages[replies.length])}\n`);
      };
      socket.setEncoding('utf8');
      socket.on('connect', send);
      socket.on('data', (chunk: string) => {
        buffered += chunk;
        if (buffered.length > this.#maxReplyBytes) {
          finish(
            new PortcullisError(
              'SURICATA_SOCKET',
              `Suricata's answer to "${command}" exceeds ${this.#maxReplyBytes} bytes`,
              { context: { command } },
            ),
          );
          return;
        }
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          const reply = parseReply(line);
          if (reply === undefined) {
            finish(
              new PortcullisError(
                'SURICATA_SOCKET',
                `Suricata sent a malformed answer to "${command}": ${line.slice(0, 200)}`,
                { context: { command } },
              ),
            );
            return;
          }
          replies.push(reply);
          // a refused handshake ends the exchange; command() reports it
          if (replies.length === messages.length || reply.return !== 'OK') {
            finish(undefined);
            return;
          }
          send();
        }
      });
      socket.on('error', (err: NodeJS.ErrnoException) => {
        const hint =
          err.code === 'ENOENT' || err.code === 'ECONNREFUSED'
            ? '; is Suricata running with unix-command enabled at this path?'
            : err.code === 'EACCES'
              ? '; the gateway lacks permission on the socket'
              : '';
        finish(
          new PortcullisError(
            'SURICATA_SOCKET',
            `cannot talk to Suricata on ${path} ("${command}"): ${err.code ?? err.message}${hint}`,
            { cause: err, context: { command } },
          ),
        );
      });
      socket.on('close', () => {
        finish(
          new PortcullisError(
            'SURICATA_SOCKET',
            `Suricata closed the command socket ${path} before answering "${command}"`,
            {
              context: { command, partial: buffered.slice(0, 200) },
            },
          ),
        );
      });
    }).then((replies) => {
      // pad a refused handshake so command() can read both positions
      while (replies.length < messages.length)
        replies.push({ return: 'NOK', message: 'not sent: the handshake was refused' });
      return replies;
    });
  }
}

function parseReply(line: string): Reply | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const r = (value as { return?: unknown }).return;
  if (r !== 'OK' && r !== 'NOK') return undefined;
  return value as Reply;
}

function describe(message: unknown): string {
  return typeof message === 'string' ? message : JSON.stringify(message ?? null);
}

function unexpected(command: string, message: unknown): PortcullisError {
  return new PortcullisError(
    'SURICATA_SOCKET',
    `unexpected answer to "${command}": ${describe(message).slice(0, 200)}`,
    { context: { command } },
  );
}

function expectArray<T>(message: unknown, command: string): readonly T[] {
  if (!Array.isArray(message)) throw unexpected(command, message);
  return message as T[];
}
