import { isAbsolute } from 'node:path';
import { Document, isMap, visit, type ScalarTag } from 'yaml';
import { invalid, type Issue } from '../errors.js';
import { MARK, NFQ_REPEAT_MARK } from '../nft/marks.js';

/**
 * The Suricata configuration of the appliance, generated (pure): one YAML file that
 * `include`s Debian's /etc/suricata/suricata.yaml and overrides what the gateway needs.
 * Suricata 7 merges an include like this: a top-level key written again after the
 * include replaces that whole subtree (`nfq`, `outputs`, `rule-files`, `unix-command`),
 * and a dotted key (`stream.bypass: yes`) sets one leaf and keeps its siblings, so
 * `app-layer` and `stream` keep every other Debian setting (checked with
 * `suricata --dump-config`).
 *
 * What makes flow bypass work (measured on Suricata 7.0.10, NFQ, see nfq.int.test.ts):
 *
 * - `stream.bypass: yes` (Debian: no) with a finite `stream.reassembly.depth`. When
 *   EITHER direction of a TCP session reaches the depth, Suricata bypasses the flow
 *   (since 5.0; OISF/suricata#4188; before that both directions had to). Plain TCP
 *   bulk flows do reach it: no app-layer protocol, a rule set or HTTP body inspection
 *   are needed, and a one-way download bypasses after about `depth` bytes.
 * - `nfq.bypass-mark`/`bypass-mask` set: only then does Suricata put a mark on the
 *   packet (capture bypass). Without them the bypass is "local": Suricata stops
 *   inspecting but every packet still crosses the queue (no speed-up at all).
 * - Suricata marks ONE packet per flow, the one that triggers the bypass; later packets
 *   of a bypassed flow are not marked again. So the ruleset must copy the bypass bit
 *   into the conntrack mark right after the verdict and skip the queue for packets
 *   whose conntrack mark has it. With `nfq.mode: repeat` the packet re-enters the hook
 *   carrying the repeat mark, where the save rule sees it; with `accept` the verdict
 *   ends the chain, so the save must sit in a later hook (mangle POSTROUTING).
 * - Nothing may overwrite the packet mark between the conntrack restore and the queue
 *   rule: a `meta mark set 0x20` (instead of `meta mark set meta mark | 0x20`) drops
 *   the restored bit, every packet of a bypassed flow is queued again, and the flow
 *   runs at full-inspection speed although its conntrack mark says bypassed.
 * - TLS: `app-layer.protocols.tls.encryption-handling: bypass` bypasses right after the
 *   handshake (a TLS 1.3 flow after ~6 packets) instead of after `depth` bytes.
 *
 * Also: `stream.midstream: true`, or every connection that is open when Suricata
 * (re)starts is dropped: in IPS mode the Debian default `midstream: false` with
 * `exception-policy: auto` means drop-flow for sessions picked up midstream.
 */

/** Debian's Suricata configuration, included first. */
export const DEBIAN_SURICATA_CONFIG = '/etc/suricata/suricata.yaml';

/**
 * The packet marks Suricata and the ruleset share. `bypass` is {@link MARK}.bypass;
 * `repeat` is the bit Suricata sets on packets it re-injects (`nfq.mode: repeat`); the
 * ruleset must let a packet carrying it pass without queueing it again. Neither collides
 * with {@link MARK}.queueClosed (0x10) or {@link MARK}.queueOpen (0x20).
 */
export const NFQ_MARK = {
  /** Suricata's verdict was given (repeat mode): accept, after saving the bypass bit. */
  repeat: NFQ_REPEAT_MARK,
  /** Suricata bypassed the flow: save in the conntrack mark; packets with it skip the queue. */
  bypass: MARK.bypass,
} as const;

/** EVE event types the gateway asks for. */
export type EveType =
  | 'alert'
  | 'drop'
  | 'anomaly'
  | 'flow'
  | 'http'
  | 'dns'
  | 'tls'
  | 'ssh'
  | 'quic'
  | 'smtp'
  | 'files'
  | 'stats';

/** Default EVE event types: everything the event plane uses. */
export const DEFAULT_EVE_TYPES: readonly EveType[] = [
  'alert',
  'drop',
  'anomaly',
  'flow',
  'http',
  'dns',
  'tls',
  'ssh',
  'quic',
  'stats',
];

/** How Suricata sits on the queue. */
export interface NfqOptions {
  /** NFQUEUE number (`-q`), 0 to 65535. Must match the ruleset's queue statement. */
  readonly queue: number;
  /**
   * `repeat` (default): the packet re-enters the hook with {@link NFQ_MARK}.repeat set;
   * `accept`: the verdict is final for this hook (the bypass bit is saved later).
   */
  readonly mode?: 'repeat' | 'accept';
  /**
   * `nfq.fail-open`: when Suricata falls behind and the queue (4096 packets) is full,
   * the kernel accepts packets instead of dropping them. Default false.
   */
  readonly failOpen?: boolean;
}

/** Which flows Suricata hands back to the kernel. */
export interface BypassOptions {
  /** `stream.bypass`: bypass a TCP flow once a direction reaches the stream depth. Default true. */
  readonly stream?: boolean;
  /** `encryption-handling: bypass`: bypass TLS flows once encrypted. Default true. */
  readonly tls?: boolean;
}

/** Everything that describes one Suricata instance of the appliance. Paths are absolute. */
export interface SuricataSetup {
  /** Where the generated YAML is written; Suricata's `-c`. */
  readonly configFile: string;
  /** Configuration included first. Default {@link DEBIAN_SURICATA_CONFIG}. */
  readonly baseConfig?: string;
  /** `default-log-dir`: suricata.log and other files Suricata writes (in the data dir). */
  readonly logDir: string;
  /** Pid file (`--pidfile`); also how a Suricata left by a previous run is found. */
  readonly pidFile: string;
  /** Unix command socket (`unix-command.filename`), see control.ts. */
  readonly commandSocket: string;
  /** Unix stream socket the gateway's EVE reader listens on; Suricata connects to it. */
  readonly eveSocket: string;
  /** Rule files, loaded in order: the installed bundle's rules, then the local rules file. At least one. */
  readonly ruleFiles: readonly string[];
  readonly nfq: NfqOptions;
  readonly bypass?: BypassOptions;
  /**
   * `stream.reassembly.depth` in bytes, per direction: how much of each TCP stream is
   * inspected before the flow is bypassed. 64 KiB to 1 GiB; default 1 MiB.
   */
  readonly streamDepth?: number;
  /** `stream.midstream`: inspect sessions already open when Suricata starts, instead of dropping them. Default true. */
  readonly midstream?: boolean;
  /** `detect.profile`. Default `low` (least memory; the appliance has 2 cores and little RAM). */
  readonly detectProfile?: 'low' | 'medium' | 'high';
  /** `runmode`. Default `autofp`: with one queue on 2 cores it inspects TCP faster than `workers` (measured ~400-500 vs ~270 Mbit/s). */
  readonly runmode?: 'autofp' | 'workers';
  /** Seconds between stats (EVE `stats` events and `dump-counters`), 1 to 3600. Default 10. */
  readonly statsInterval?: number;
  /** `HOME_NET`: the guest networks, as CIDRs. Default: the base configuration's (RFC 1918). */
  readonly homeNet?: readonly string[];
  /** EVE event types. Default {@link DEFAULT_EVE_TYPES}. */
  readonly eveTypes?: readonly EveType[];
  /**
   * Passive capture instead of the queue (IPS mode `ids`: copies, never drops):
   * AF_PACKET on `interface` with a BPF filter. Absent: inline on NFQUEUE.
   */
  readonly afPacket?: { readonly interface: string; readonly bpfFilter: string };
}

/** Default stream depth, bytes. */
export const DEFAULT_STREAM_DEPTH = 1024 * 1024;

/** Check a setup; every problem is reported at once as CONFIG_INVALID. */
export function checkSuricataSetup(s: SuricataSetup): void {
  const issues: Issue[] = [];
  const path = (p: string, value: string | undefined): void => {
    if (value === undefined) return;
    if (!isAbsolute(value))
      issues.push({ path: p, message: `must be an absolute path, got ${JSON.stringify(value)}` });
    else if (/[\n\r\0"]/.test(value))
      issues.push({ path: p, message: 'must not contain newlines, NUL or double quotes' });
  };
  path('/configFile', s.configFile);
  path('/baseConfig', s.baseConfig);
  path('/logDir', s.logDir);
  path('/pidFile', s.pidFile);
  path('/commandSocket', s.commandSocket);
  path('/eveSocket', s.eveSocket);
  if (s.ruleFiles.length === 0) issues.push({ path: '/ruleFiles', message: 'needs at least one rule file' });
  s.ruleFiles.forEach((f, i) => path(`/ruleFiles/${i}`, f));
  const int = (p: string, v: number | undefined, min: number, max: number): void => {
    if (v !== undefined && (!Number.isInteger(v) || v < min || v > max))
      issues.push({ path: p, message: `must be an integer from ${min} to ${max}, got ${v}` });
  };
  int('/nfq/queue', s.nfq.queue, 0, 65535);
  int('/streamDepth', s.streamDepth, 64 * 1024, 1024 * 1024 * 1024);
  int('/statsInterval', s.statsInterval, 1, 3600);
  for (const [i, cidr] of (s.homeNet ?? []).entries()) {
    if (!/^[0-9a-fA-F:.]+\/\d{1,3}$/.test(cidr))
      issues.push({ path: `/homeNet/${i}`, message: `must be a CIDR, got ${JSON.stringify(cidr)}` });
  }
  if (s.homeNet !== undefined && s.homeNet.length === 0)
    issues.push({ path: '/homeNet', message: 'must list at least one network when given' });
  if (issues.length > 0) throw invalid('CONFIG_INVALID', 'Suricata setup is invalid', issues);
}

/** Suricata's command line for `setup` (NFQ mode, in the foreground). */
export function suricataArgs(setup: SuricataSetup): string[] {
  const capture = setup.afPacket
    ? [`--af-packet=${setup.afPacket.interface}`]
    : ['-q', String(setup.nfq.queue)];
  return ['-c', setup.configFile, ...capture, '--pidfile', setup.pidFile];
}

/**
 * Render the YAML of `setup`. Pure and deterministic. Throws CONFIG_INVALID (all
 * problems at once) for a setup Suricata would misread.
 */
export function renderSuricataConfig(setup: SuricataSetup): string {
  checkSuricataSetup(setup);
  const bypass = { stream: setup.bypass?.stream ?? true, tls: setup.bypass?.tls ?? true };
  const types = setup.eveTypes ?? DEFAULT_EVE_TYPES;
  const doc: YamlMap = {
    include: setup.baseConfig ?? DEBIAN_SURICATA_CONFIG,
    ...(setup.homeNet ? { 'vars.address-groups.HOME_NET': `[${setup.homeNet.join(',')}]` } : {}),
    'default-log-dir': setup.logDir,
    runmode: setup.runmode ?? 'autofp',
    ...(setup.afPacket
      ? {
          'af-packet': [
            {
              interface: setup.afPacket.interface,
              'bpf-filter': setup.afPacket.bpfFilter,
              'copy-mode': 'none',
              'cluster-id': 97,
              'cluster-type': 'cluster_flow',
              defrag: true,
            },
          ],
        }
      : {}),
    nfq: {
      mode: setup.nfq.mode ?? 'repeat',
      'repeat-mark': hex(NFQ_MARK.repeat),
      'repeat-mask': hex(NFQ_MARK.repeat),
      'bypass-mark': hex(NFQ_MARK.bypass),
      'bypass-mask': hex(NFQ_MARK.bypass),
      'fail-open': setup.nfq.failOpen ?? false,
    },
    'stream.bypass': bypass.stream,
    'stream.midstream': setup.midstream ?? true,
    'stream.reassembly.depth': setup.streamDepth ?? DEFAULT_STREAM_DEPTH,
    'app-layer.protocols.tls.encryption-handling': bypass.tls ? 'bypass' : 'default',
    'detect.profile': setup.detectProfile ?? 'low',
    // the generated datasets (names.ts) are loaded by absolute path
    'datasets.rules.allow-absolute-filenames': true,
    'stats.interval': setup.statsInterval ?? 10,
    'unix-command': { enabled: true, filename: setup.commandSocket },
    'rule-files': [...setup.ruleFiles],
    outputs: [
      {
        'eve-log': {
          enabled: true,
          filetype: 'unix_stream',
          filename: setup.eveSocket,
          types: types.map(eveType),
        },
      },
    ],
  };
  return renderYaml(doc, 'Generated by portcullis (gateway/src/suricata/config.ts); do not edit.');
}

/** One EVE type entry with the settings the gateway relies on. */
function eveType(t: EveType): YamlValue {
  switch (t) {
    case 'alert':
      // the packet: the block page's answer takes the request's sequence numbers from it (block-response.ts)
      return { alert: { metadata: true, 'tagged-packets': true, verdict: true, packet: true } };
    case 'drop':
      // one drop event per flow and direction, not one per dropped packet
      return { drop: { alerts: true, flows: 'start', verdict: true } };
    case 'anomaly':
      return { anomaly: { enabled: true } };
    case 'http':
    case 'tls':
      return { [t]: { extended: true } };
    case 'stats':
      return { stats: { totals: true, threads: false, deltas: false } };
    default:
      return t;
  }
}

// --- YAML: the `yaml` package, YAML 1.1 as Suricata reads it --------------------

/** A hex scalar (`0x08000000`); Suricata reads integers with strtoimax(…, 0). */
class Hex {
  constructor(readonly value: number) {}
}
const hex = (n: number): Hex => new Hex(n);

/** Writes a {@link Hex} as an untagged YAML integer, eight hex digits. */
const hexTag: ScalarTag = {
  tag: 'tag:yaml.org,2002:int',
  default: true,
  identify: (v) => v instanceof Hex,
  resolve: (text) => Number.parseInt(text, 16),
  stringify: (item) => `0x${(item.value as Hex).value.toString(16).padStart(8, '0')}`,
};

type YamlScalar = string | number | boolean | Hex;
/** A block map; keys are written in insertion order (none of them is integer-like). */
interface YamlMap {
  readonly [key: string]: YamlValue;
}
type YamlValue = YamlScalar | readonly YamlValue[] | YamlMap;

/** Strings written plain: words and paths. Others are double-quoted, although YAML might not need it. */
const SIMPLE = /^[A-Za-z0-9_/][A-Za-z0-9_./-]*$/;

/**
 * The document as YAML 1.1 (the version Suricata's parser speaks): block style, keys
 * in the order given, booleans as yes/no, strings plain only when they are simple
 * (words, paths) and YAML 1.1 would not read them as something else (`"yes"`,
 * `"0.5"`), no line folding.
 */
function renderYaml(map: YamlMap, comment: string): string {
  const doc = new Document(map, { version: '1.1', customTags: [hexTag] });
  visit(doc, {
    Scalar(key, node) {
      if (key !== 'key' && typeof node.value === 'string' && !SIMPLE.test(node.value))
        node.type = 'QUOTE_DOUBLE';
    },
  });
  doc.directives!.yaml.explicit = true;
  if (isMap(doc.contents)) doc.contents.commentBefore = ` ${comment}`;
  return doc.toString({ trueStr: 'yes', falseStr: 'no', lineWidth: 0 });
}
