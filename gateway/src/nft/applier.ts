import { isDeepStrictEqual } from 'node:util';
import { PortcullisError } from '../errors.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { reclaimMemory } from '../memory.js';
import type { NftBackend } from './backend.js';
import { NetlinkGeneration, type NftGeneration } from './generation.js';
import { TABLE, VERIFIED4, VERIFIED6 } from './names.js';
import type {
  ChainObj,
  ChainSpec,
  Family,
  NftCommand,
  NftValue,
  PackedIpv4,
  Ruleset,
  SetObj,
  SetSpec,
  TableRef,
  TableSpec,
  TextTable,
} from './types.js';
import { systemClock, type Clock } from '../clock.js';

const FAMILY = 'inet' as const;
/** The service's own table: `inet portcullis`. */
const INET: TableRef = { family: FAMILY, name: TABLE };

/** How an apply went: the kind of transaction and its size. */
export interface ApplyResult {
  readonly kind: 'full' | 'incremental' | 'none';
  readonly commands: number;
  readonly ms: number;
}

/** A run-time element of a dynamic set (learned from DNS, blocked by the IPS). */
interface DynamicElement {
  readonly val: NftValue;
  /** Epoch ms when it expires. */
  readonly expires: number;
}

/** The sets whose elements say which guest is which: compared element by element. */
const IDENTITY = [
  ['map', 'vm_chains'],
  ['set', 'macip4'],
  ['set', 'macs'],
] as const;

/** Most generations of our own transactions remembered while a check is pending. */
const OWN_GENERATIONS = 100_000;

/**
 * Applies compiled rulesets to the kernel. The first apply (and any change of the
 * table's structure that cannot be patched) replaces the whole table in one
 * transaction; later applies patch only the chains and set elements that changed,
 * still as one transaction each. Elements of dynamic sets are remembered so that a
 * full replace carries them over.
 *
 * Drift (someone else changing the table) is found without listing the table after
 * every transaction: the kernel numbers its committed transactions (the ruleset
 * generation), and a generation reached only by our own transactions needs no look.
 * Only when someone else committed does `drift()` list the table, and then without set
 * elements except the identity sets'.
 */
export class NftApplier {
  readonly #backend: NftBackend;
  readonly #log: Logger;
  readonly #now: Clock;
  #applied: Ruleset | undefined;
  /** The kernel's listing of the applied ruleset, when one was taken since it was applied. */
  #reference: string | undefined;
  readonly #generation: NftGeneration;
  /** A generation at which the table was known to be what we wrote. */
  #verified: number | undefined;
  /** Generations our own transactions committed (one each), not yet folded into #verified. */
  readonly #own = new Set<number>();
  /** Applies in flight, and applies begun or ended: a listing spanning one is no evidence. */
  #applying = 0;
  #applyEpoch = 0;
  readonly #dynamic = new Map<string, Map<string, DynamicElement>>();
  readonly #bulk: NftBackend | undefined;
  readonly #bulkElements: number;
  readonly #reclaim: () => void;

  /**
   * @param options.bulk a backend for transactions with more than `bulkElements`
   *   elements (default 50,000): the nft binary, so that nft's memory for a million
   *   elements is a child process's, returned when it exits, not the service's.
   * @param options.reclaim called after such a bulk transaction, to give back the
   *   memory of the one-off work around it (loading the list, writing the batch);
   *   default `reclaimMemory` (a full garbage collection, a few milliseconds).
   * @param options.generation reads the kernel's ruleset generation (default: a netfilter
   *   netlink socket, opened at the first read). When it cannot be read, every drift
   *   check lists the table.
   */
  constructor(
    backend: NftBackend,
    options: {
      log?: Logger;
      now?: Clock;
      bulk?: NftBackend;
      bulkElements?: number;
      reclaim?: () => void;
      generation?: NftGeneration;
    } = {},
  ) {
    this.#generation = options.generation ?? new NetlinkGeneration();
    this.#backend = backend;
    this.#bulk = options.bulk;
    this.#bulkElements = options.bulkElements ?? 50_000;
    this.#reclaim = options.reclaim ?? reclaimMemory;
    this.#log = options.log ?? silentLogger;
    this.#now = options.now ?? systemClock;
  }

  get backend(): NftBackend {
    return this.#backend;
  }

  /** The ruleset last applied, if any. */
  get applied(): Ruleset | undefined {
    return this.#applied;
  }

  /** Check a ruleset against the kernel without changing anything (nft's dry run). */
  async check(next: Ruleset): Promise<void> {
    await this.#backend.run(this.#fullCommands(next), { dryRun: true });
    const text = textTableScript([], next.textTables ?? [], true);
    if (text !== '') await this.#backend.runText(text, { dryRun: true });
  }

  /** Apply `next`: incrementally when possible, else as a full replace. Atomic either way. */
  async apply(next: Ruleset, options: { full?: boolean } = {}): Promise<ApplyResult> {
    const started = performance.now();
    const prev = this.#applied;
    let commands: NftCommand[] | undefined;
    let kind: ApplyResult['kind'] = 'full';
    if (prev && !options.full) {
      commands = incrementalCommands(prev, next);
      kind = commands === undefined ? 'full' : commands.length === 0 ? 'none' : 'incremental';
    }
    if (commands === undefined) {
      commands = this.#fullCommands(next);
      kind = 'full';
    }
    const count = commands.length;
    const bulk = this.#bulk !== undefined && countElements(commands) > this.#bulkElements;
    const text = textTableScript(prev?.textTables ?? [], next.textTables ?? [], kind === 'full');
    if (commands.length > 0 || text !== '') {
      this.#applying++;
      this.#applyEpoch++;
      try {
        if (commands.length > 0)
          await this.#commit(bulk ? this.#bulk! : this.#backend, commands, kind === 'full');
        if (text !== '') await this.#commit(this.#backend, text, false);
        this.#reference = undefined;
      } finally {
        this.#applying--;
        this.#applyEpoch++;
      }
    }
    this.#applied = next;
    this.#pruneDynamic(next);
    // the garbage of the one-off work around a bulk transaction goes now, not some day
    if (bulk) this.#reclaim();
    const ms = performance.now() - started;
    this.#log.debug({ kind, commands: count, ms: Math.round(ms) }, 'nftables ruleset applied');
    return { kind, commands: count, ms };
  }

  /**
   * Add run-time elements to a dynamic set with a timeout (seconds). Re-adding an
   * element refreshes its timeout; an element whose timeout already runs at least as
   * long (within a second: timeouts and DNS TTLs are whole seconds) is left as it is,
   * so the same DNS answer served again from the cache costs no transaction. One small
   * transaction, or none.
   */
  async addElements(set: string, values: readonly NftValue[], timeoutSeconds: number): Promise<void> {
    if (values.length === 0) return;
    const spec = this.#applied?.sets.find((s) => s.name === set);
    if (!spec?.dynamic)
      throw new PortcullisError(
        'NFT_APPLY_FAILED',
        `set "${set}" is not a dynamic set of the applied ruleset`,
      );
    const timeout = Math.max(1, Math.round(timeoutSeconds));
    const now = this.#now();
    const expires = now + timeout * 1000;
    const map = this.#dynamic.get(set) ?? new Map<string, DynamicElement>();
    this.#dynamic.set(set, map);
    const fresh: NftValue[] = [];
    const present: NftValue[] = [];
    const before = new Map<string, DynamicElement | undefined>();
    for (const val of values) {
      const key = JSON.stringify(val);
      const e = map.get(key);
      if (before.has(key) || (e && e.expires + 1000 >= expires)) continue;
      fresh.push(val);
      // delete-then-add refreshes the timeout of an element that is already there
      if (e && e.expires > now) present.push(val);
      before.set(key, e);
      // noted before the transaction: the same answer again meanwhile needs no transaction of its own
      map.set(key, { val, expires });
    }
    if (fresh.length === 0) return;
    const cmds: NftCommand[] = [];
    if (present.length > 0)
      cmds.push({ delete: { element: { family: FAMILY, table: TABLE, name: set, elem: present } } });
    const elem = fresh.map((val) => ({ elem: { val, timeout } }));
    cmds.push({ add: { element: { family: FAMILY, table: TABLE, name: set, elem } } });
    try {
      await this.#commit(this.#backend, cmds, false);
    } catch (err) {
      for (const [key, e] of before) {
        if (map.get(key)?.expires !== expires) continue;
        if (e) map.set(key, e);
        else map.delete(key);
      }
      throw err;
    }
  }

  /** Remove run-time elements from a dynamic set (undo of an IPS block). */
  async deleteElements(set: string, values: readonly NftValue[]): Promise<void> {
    const known = this.#dynamic.get(set);
    const present = values.filter((v) => {
      const e = known?.get(JSON.stringify(v));
      return e !== undefined && e.expires > this.#now();
    });
    if (present.length > 0) {
      await this.#commit(
        this.#backend,
        [{ delete: { element: { family: FAMILY, table: TABLE, name: set, elem: present } } }],
        false,
      );
    }
    for (const v of values) known?.delete(JSON.stringify(v));
  }

  /** The run-time elements of a dynamic set that have not expired. */
  dynamicElements(set: string): Array<{ val: NftValue; expiresAt: Date }> {
    const now = this.#now();
    return [...(this.#dynamic.get(set)?.values() ?? [])]
      .filter((e) => e.expires > now)
      .map((e) => ({ val: e.val, expiresAt: new Date(e.expires) }));
  }

  /**
   * Compare the kernel's table with what was applied. Returns undefined when they
   * match (or a listing could not tell, being crossed by an apply: the next check
   * will), else a short description of the difference.
   *
   * When no one else committed a transaction since the table was last known to be
   * ours, nothing is listed. Otherwise the table is listed without set elements (plus
   * the identity sets with theirs, which are small) and compared with the listing taken
   * of the applied ruleset; when there is none yet, with the ruleset's skeleton: its
   * chains and how many rules each has, its sets, maps and counters, and how many
   * elements the identity sets hold. Run-time elements of dynamic sets are never
   * compared: they come and go.
   */
  async drift(): Promise<string | undefined> {
    const applied = this.#applied;
    if (!applied || this.#applying > 0) return undefined;
    const epoch = this.#applyEpoch;
    const before = this.#readGeneration();
    const ours = before !== undefined && this.#isVerified(before);
    // ours, and the listing to compare with later is taken: nothing to do
    if (ours && this.#reference !== undefined) return undefined;
    let listing: Listing;
    try {
      listing = await this.#list();
    } catch (err) {
      if (epoch !== this.#applyEpoch) return undefined;
      return `table inet ${TABLE} cannot be listed: ${(err as Error).message}`;
    }
    const after = this.#readGeneration();
    // an apply crossed the listing: it shows neither the old ruleset nor the new one
    if (epoch !== this.#applyEpoch || this.#applied !== applied) return undefined;
    if (!ours) {
      const diff =
        this.#reference !== undefined
          ? listing.text === this.#reference
            ? undefined
            : `table inet ${TABLE} differs from the applied ruleset`
          : skeletonDiff(applied, listing.objects);
      if (diff) return diff;
      // it matches: what was committed meanwhile left our table as it was
      if (before !== undefined) this.#verify(before);
    }
    // the listing to compare with from now on: one that matched, or one of our own
    // state (no one else committed while it was taken)
    if (this.#reference === undefined && (!ours || (after !== undefined && this.#isVerified(after))))
      this.#reference = listing.text;
    return undefined;
  }

  /** The generation, or undefined when it cannot be read (then every check lists). */
  #readGeneration(): number | undefined {
    try {
      return this.#generation.read();
    } catch (err) {
      this.#log.debug({ err }, 'nftables generation unreadable; drift checks list the table');
      return undefined;
    }
  }

  /**
   * Run one transaction of ours, noting the generation it made: when exactly one
   * transaction was committed between the reads around it, that one was ours.
   */
  async #commit(backend: NftBackend, commands: readonly NftCommand[] | string, full: boolean): Promise<void> {
    const before = this.#readGeneration();
    if (typeof commands === 'string') await backend.runText(commands);
    else await backend.run(commands);
    const after = this.#readGeneration();
    if (before === undefined || after === undefined || after !== before + 1) return;
    // a full replace leaves nothing of what was there before: the table is ours whatever happened
    if (full) this.#verify(after);
    else {
      if (this.#own.size >= OWN_GENERATIONS) this.#own.clear();
      this.#own.add(after);
    }
  }

  #verify(generation: number): void {
    this.#verified = generation;
    for (const g of this.#own) if (g <= generation) this.#own.delete(g);
  }

  /** Whether every transaction up to `generation` since the verified one was ours. */
  #isVerified(generation: number): boolean {
    let v = this.#verified;
    if (v === undefined) return false;
    while (v < generation && this.#own.has(v + 1)) this.#own.delete(++v);
    this.#verified = v;
    return v === generation;
  }

  async #list(): Promise<Listing> {
    // listings go through the bulk backend (the nft binary) when there is one: a listing
    // fills nft's cache, which the in-process context would then carry into (and slow
    // down) the next transaction. `-t list ruleset` leaves set elements out (nft 1.0.6's
    // `-t list table` still fetches them all: seconds for a million); `list set X`
    // fetches only X's; one command an nft run (1.0.6 fails several `list set`s in one).
    const nft = this.#bulk ?? this.#backend;
    const objects = tableObjects(await nft.runText('list ruleset', { terse: true }));
    for (const [kind, name] of IDENTITY) {
      objects.push(...tableObjects(await nft.runText(`list ${kind} ${FAMILY} ${TABLE} ${name}`)));
    }
    return { objects, text: stripVolatile(JSON.stringify(objects)) };
  }

  #fullCommands(next: Ruleset): NftCommand[] {
    const cmds: NftCommand[] = [
      { add: { table: { family: FAMILY, name: TABLE } } },
      { delete: { table: { family: FAMILY, name: TABLE } } },
      { add: { table: { family: FAMILY, name: TABLE } } },
    ];
    for (const name of next.counters) cmds.push({ add: { counter: { family: FAMILY, table: TABLE, name } } });
    for (const set of next.sets.filter((s) => !s.map))
      cmds.push(...addSetCommands(set, this.#liveDynamic(set)));
    for (const chain of next.chains) cmds.push({ add: { chain: chainObj(chain) } });
    for (const set of next.sets.filter((s) => s.map)) cmds.push(...addSetCommands(set, []));
    for (const chain of next.chains) cmds.push(...ruleCommands(chain));
    const keep = new Set((next.tables ?? []).map(tableKey));
    for (const t of this.#applied?.tables ?? []) if (!keep.has(tableKey(t))) cmds.push(...dropTable(t));
    for (const t of next.tables ?? []) cmds.push(...tableCommands(t));
    return cmds;
  }

  #liveDynamic(set: SetSpec): NftValue[] {
    if (!set.dynamic) return [];
    const now = this.#now();
    const out: NftValue[] = [];
    for (const e of this.#dynamic.get(set.name)?.values() ?? []) {
      const left = Math.floor((e.expires - now) / 1000);
      if (left >= 1) out.push({ elem: { val: e.val, timeout: left } });
    }
    return out;
  }

  #pruneDynamic(next: Ruleset): void {
    const names = new Set(next.sets.filter((s) => s.dynamic).map((s) => s.name));
    for (const name of this.#dynamic.keys()) if (!names.has(name)) this.#dynamic.delete(name);
  }
}

function countElements(commands: readonly NftCommand[]): number {
  let n = 0;
  for (const c of commands) {
    if ('add' in c && 'element' in c.add) n += c.add.element.elem.length;
    else if ('add' in c && ('set' in c.add || 'map' in c.add))
      n += ('set' in c.add ? c.add.set : c.add.map).elem?.length ?? 0;
  }
  return n;
}

/** A listing of the table: its objects (nft JSON), and as text to compare. */
interface Listing {
  readonly objects: Array<Record<string, ListedObject>>;
  readonly text: string;
}

interface ListedObject {
  readonly family?: string;
  readonly table?: string;
  readonly name?: string;
  readonly chain?: string;
  readonly elem?: unknown[];
}

/** The families of the service's tables: `inet portcullis` and the other families' `portcullis`. */
const OWN_FAMILIES: ReadonlySet<string> = new Set<Family>([FAMILY, 'bridge']);

/** Whether a table name is the service's: `portcullis`, or `portcullis_<part>` (text tables). */
const ownTable = (name: string | undefined): boolean =>
  name !== undefined && (name === TABLE || name.startsWith(`${TABLE}_`));

/** The objects of the service's tables (`portcullis…` of `inet` and `bridge`) in an nft JSON listing. */
function tableObjects(json: string): Array<Record<string, ListedObject>> {
  if (json.trim() === '') return [];
  const doc = JSON.parse(json) as { nftables?: Array<Record<string, ListedObject>> };
  return (doc.nftables ?? []).filter((o) => {
    const v = Object.values(o)[0];
    return (
      v?.family !== undefined &&
      OWN_FAMILIES.has(v.family) &&
      (ownTable(v.table) || ('table' in o && ownTable(v.name)))
    );
  });
}

/**
 * The nft text that turns the text tables `prev` into `next` (one transaction): each
 * table of `next` that is new or changed (every one when `all`) replaced whole, each
 * one gone deleted. Empty when there is nothing to do.
 */
export function textTableScript(
  prev: readonly TextTable[],
  next: readonly TextTable[],
  all: boolean,
): string {
  const key = (t: TextTable): string => `${t.family} ${t.name}`;
  const before = new Map(prev.map((t) => [key(t), t]));
  const after = new Set(next.map(key));
  const lines: string[] = [];
  for (const t of prev) if (!after.has(key(t))) lines.push(`add table ${key(t)}`, `delete table ${key(t)}`);
  for (const t of next) {
    const p = before.get(key(t));
    if (!all && p !== undefined && p.body === t.body) continue;
    lines.push(`add table ${key(t)}`, `delete table ${key(t)}`, `table ${key(t)} {`, t.body, '}');
  }
  return lines.length === 0 ? '' : lines.join('\n') + '\n';
}

/**
 * How a listing of the table (nft JSON objects, set elements only for the identity
 * sets) falls short of a ruleset's skeleton: a missing table, chain, set, map or
 * counter, a chain with another number of rules, an identity set with another number
 * of elements. Undefined when it does not. Extra objects are not drift: the next
 * full apply would drop them, and only the ones we name are ours.
 */
export function skeletonDiff(
  ruleset: Ruleset,
  objects: ReadonlyArray<Record<string, ListedObject>>,
): string | undefined {
  // names of other families' objects carry their family: `chain bridge:ports`
  const at = (family: string | undefined, name: string): string =>
    family === undefined || family === FAMILY ? name : `${family}:${name}`;
  const rules = new Map<string, number>();
  const named = new Set<string>();
  const elements = new Map<string, number>();
  for (const o of objects) {
    const [kind, v] = Object.entries(o)[0]!;
    if (kind === 'rule' && v.chain) {
      const c = at(v.family, v.chain);
      rules.set(c, (rules.get(c) ?? 0) + 1);
    } else if (v.name) named.add(`${kind} ${at(v.family, v.name)}`);
    if ((kind === 'set' || kind === 'map') && v.elem && v.name && v.family === FAMILY)
      elements.set(v.name, v.elem.length);
  }
  const parts: Array<[string, Pick<Ruleset, 'chains' | 'sets' | 'counters'>]> = [[FAMILY, ruleset]];
  for (const t of ruleset.tables ?? [])
    parts.push([t.family, { ...t, sets: [...t.sets], chains: [...t.chains], counters: [...t.counters] }]);
  for (const [family, part] of parts) {
    if (!named.has(`table ${at(family, TABLE)}`)) return `table ${family} ${TABLE} is missing`;
    for (const c of part.chains) {
      const name = at(family, c.name);
      if (!named.has(`chain ${name}`)) return `chain ${name} is missing`;
      const n = rules.get(name) ?? 0;
      if (n !== c.rules.length) return `chain ${name} has ${n} rules instead of ${c.rules.length}`;
    }
    for (const s of part.sets) {
      const kind = s.map ? 'map' : 'set';
      if (!named.has(`${kind} ${at(family, s.name)}`)) return `${kind} ${at(family, s.name)} is missing`;
    }
    for (const name of part.counters)
      if (!named.has(`counter ${at(family, name)}`)) return `counter ${at(family, name)} is missing`;
  }
  for (const t of ruleset.textTables ?? []) {
    if (!named.has(`table ${at(t.family, t.name)}`)) return `table ${t.family} ${t.name} is missing`;
    for (const name of t.counters)
      if (!named.has(`counter ${at(t.family, name)}`)) return `counter ${at(t.family, name)} is missing`;
  }
  for (const [, name] of IDENTITY) {
    const want = ruleset.sets.find((s) => s.name === name)?.elements.length;
    const have = elements.get(name) ?? 0;
    if (want !== undefined && have !== want) return `${name} holds ${have} elements instead of ${want}`;
  }
  return undefined;
}

function stripVolatile(listing: string): string {
  // counters count; elements of timeout sets expire: neither is drift
  return listing.replace(/"packets":\s*\d+,\s*"bytes":\s*\d+/g, '').replace(/"expires":\s*\d+/g, '');
}

function chainObj(chain: ChainSpec, ref: TableRef = INET): ChainObj {
  return chain.base
    ? {
        family: ref.family,
        table: ref.name,
        name: chain.name,
        type: chain.base.type,
        hook: chain.base.hook,
        prio: chain.base.prio,
        policy: chain.base.policy,
      }
    : { family: ref.family, table: ref.name, name: chain.name };
}

/** Elements per `add element` command: keeps single JSON objects reasonable. */
const ELEMENT_CHUNK = 50_000;

function addSetCommands(set: SetSpec, extra: NftValue[], ref: TableRef = INET): NftCommand[] {
  const decl = {
    family: ref.family,
    table: ref.name,
    name: set.name,
    type: set.type,
    flags: set.flags,
    ...(set.size ? { size: set.size } : {}),
    ...(set.comment ? { comment: set.comment.slice(0, 120) } : {}),
  };
  const cmds: NftCommand[] = [set.map ? { add: { map: { ...decl, map: set.map } } } : { add: { set: decl } }];
  const elements = extra.length > 0 ? [...set.elements, ...extra] : set.elements;
  for (let i = 0; i < elements.length; i += ELEMENT_CHUNK) {
    // packed elements go as views of the list, not copies
    const elem = ArrayBuffer.isView(elements)
      ? elements.subarray(i, i + ELEMENT_CHUNK)
      : elements.slice(i, i + ELEMENT_CHUNK);
    cmds.push({ add: { element: { family: ref.family, table: ref.name, name: set.name, elem } } });
  }
  return cmds;
}

function ruleCommands(chain: ChainSpec, ref: TableRef = INET): NftCommand[] {
  return chain.rules.map((expr) => ({
    add: { rule: { family: ref.family, table: ref.name, chain: chain.name, expr } },
  }));
}

function setDecl(s: SetSpec): string {
  return JSON.stringify([s.type, s.flags, s.map, s.dynamic ?? false, s.size]);
}

const fingerprints = new WeakMap<ChainSpec, string>();

/** A chain's rules as text, computed once per compiled chain: cheap to compare. */
function fingerprint(c: ChainSpec): string {
  let f = fingerprints.get(c);
  if (f === undefined) {
    f = JSON.stringify(c.rules);
    fingerprints.set(c, f);
  }
  return f;
}

/** The key of an element for diffing: its value without timeout. */
function elementKey(e: NftValue): string {
  if (Array.isArray(e)) return JSON.stringify(e[0]);
  if (typeof e === 'object' && e !== null && 'elem' in e) return JSON.stringify(e.elem.val);
  return JSON.stringify(e);
}

function elementVal(e: NftValue): NftValue {
  if (Array.isArray(e)) return e[0] as NftValue;
  if (typeof e === 'object' && e !== null && 'elem' in e) return e.elem.val;
  return e;
}

/**
 * The commands that turn `prev` into `next` in place, or undefined when only a full
 * replace can (a base chain or the counters changed). Unchanged chains and sets are
 * not touched, so established flows of unaffected VMs never notice.
 */
export function incrementalCommands(prev: Ruleset, next: Ruleset): NftCommand[] | undefined {
  const prevChains = new Map(prev.chains.map((c) => [c.name, c]));
  const nextChains = new Map(next.chains.map((c) => [c.name, c]));
  for (const c of next.chains) {
    const p = prevChains.get(c.name);
    if (c.base || p?.base) {
      if (!p || !isDeepStrictEqual(p.base, c.base)) return undefined;
    }
  }
  for (const p of prev.chains) if (p.base && !nextChains.has(p.name)) return undefined;

  const prevSets = new Map(prev.sets.map((s) => [s.name, s]));
  const nextSets = new Map(next.sets.map((s) => [s.name, s]));

  const addDecls: NftCommand[] = [];
  const flushes: NftCommand[] = [];
  const elementOps: NftCommand[] = [];
  const rules: NftCommand[] = [];
  const deletes: NftCommand[] = [];
  const el = (
    name: string,
    elem: NftValue[] | PackedIpv4,
  ): { family: 'inet'; table: string; name: string; elem: NftValue[] | PackedIpv4 } => ({
    family: FAMILY,
    table: TABLE,
    name,
    elem,
  });

  // counters
  const prevCounters = new Set(prev.counters);
  const nextCounters = new Set(next.counters);
  for (const c of next.counters)
    if (!prevCounters.has(c)) addDecls.push({ add: { counter: { family: FAMILY, table: TABLE, name: c } } });
  for (const c of prev.counters)
    if (!nextCounters.has(c))
      deletes.push({ delete: { counter: { family: FAMILY, table: TABLE, name: c } } });

  // new and re-declared sets; new chains
  const recreated = new Set<string>();
  for (const s of next.sets) {
    const p = prevSets.get(s.name);
    if (p && p !== s && setDecl(p) !== setDecl(s)) recreated.add(s.name);
  }
  const changedChains = new Set<string>();
  for (const c of next.chains) {
    const p = prevChains.get(c.name);
    if (!p) {
      addDecls.push({ add: { chain: chainObj(c) } });
      changedChains.add(c.name);
    } else if (p !== c && fingerprint(p) !== fingerprint(c)) changedChains.add(c.name);
  }
  // a chain that refers to a re-created set must be rebuilt
  if (recreated.size > 0) {
    for (const c of next.chains) {
      const text = fingerprint(c);
      for (const name of recreated) if (text.includes(`"@${name}"`)) changedChains.add(c.name);
    }
  }
  for (const name of changedChains) {
    if (prevChains.has(name)) flushes.push({ flush: { chain: { family: FAMILY, table: TABLE, name } } });
  }
  for (const p of prev.chains) {
    if (!nextChains.has(p.name)) {
      flushes.push({ flush: { chain: { family: FAMILY, table: TABLE, name: p.name } } });
      deletes.push({ delete: { chain: { family: FAMILY, table: TABLE, name: p.name } } });
    }
  }

  // sets: removed and re-declared go after the flushes; elements are diffed
  for (const p of prev.sets) {
    if (!nextSets.has(p.name) || recreated.has(p.name)) {
      deletes.push({
        delete: { [p.map ? 'map' : 'set']: { family: FAMILY, table: TABLE, name: p.name } },
      } as NftCommand);
    }
  }
  const lateAdds: NftCommand[] = [];
  for (const s of next.sets) {
    const p = prevSets.get(s.name);
    if (!p || recreated.has(s.name)) {
      // maps refer to chains: declare them after the chains exist
      (s.map ? lateAdds : addDecls).push(...addSetCommands(s, []));
      continue;
    }
    if (s.dynamic || p.elements === s.elements) continue;
    if (ArrayBuffer.isView(p.elements) || ArrayBuffer.isView(s.elements)) {
      const { removed, added } = diffPacked(p.elements, s.elements);
      if (removed.length > 0) elementOps.push({ delete: { element: el(s.name, removed) } });
      if (added.length > 0) elementOps.push({ add: { element: el(s.name, added) } });
      continue;
    }
    const before = new Map(p.elements.map((e) => [elementKey(e), e]));
    const after = new Map(s.elements.map((e) => [elementKey(e), e]));
    const removed: NftValue[] = [];
    const added: NftValue[] = [];
    for (const [k, e] of before) {
      const a = after.get(k);
      if (a === undefined) removed.push(elementVal(e));
      else if (!isDeepStrictEqual(a, e)) {
        removed.push(elementVal(e));
        added.push(a);
      }
    }
    for (const [k, e] of after) if (!before.has(k)) added.push(e);
    if (removed.length > 0) elementOps.push({ delete: { element: el(s.name, removed) } });
    if (added.length > 0) elementOps.push({ add: { element: el(s.name, added) } });
  }

  for (const name of changedChains) rules.push(...ruleCommands(nextChains.get(name)!));

  // Order: declarations, flushes (drop references), map/set element changes
  // (a map element may jump to a chain about to go), rules, then deletions.
  const recreatedDeletes = deletes.filter(
    (d) => 'delete' in d && ('set' in d.delete || 'map' in d.delete) && recreated.has(nameOf(d)),
  );
  const otherDeletes = deletes.filter((d) => !recreatedDeletes.includes(d));
  const commands = [
    ...flushes,
    ...recreatedDeletes,
    ...addDecls,
    ...elementOps,
    ...lateAdds,
    ...rules,
    ...otherDeletes.sort(deleteOrder),
    ...otherTableCommands(prev.tables ?? [], next.tables ?? []),
  ];
  // whatever changed, established flows pass their VM's whole chain again at their next
  // packet (the fast path's pairs were verified against the table as it was)
  if (commands.length > 0)
    for (const name of [VERIFIED4, VERIFIED6])
      if (nextSets.has(name) && !recreated.has(name) && prevSets.has(name))
        // a flush names the set only (nft reads no type for it)
        commands.push({ flush: { set: { family: FAMILY, table: TABLE, name } as SetObj } });
  return commands;
}

function tableKey(t: TableRef): string {
  return `${t.family} ${t.name}`;
}

/** A table of another family, whole: created empty (or emptied) and filled. */
function tableCommands(t: TableSpec): NftCommand[] {
  const ref: TableRef = { family: t.family, name: t.name };
  const cmds: NftCommand[] = [
    { add: { table: { ...ref } } },
    { delete: { table: { ...ref } } },
    { add: { table: { ...ref } } },
  ];
  for (const name of t.counters) cmds.push({ add: { counter: { family: t.family, table: t.name, name } } });
  for (const set of t.sets.filter((x) => !x.map)) cmds.push(...addSetCommands(set, [], ref));
  for (const chain of t.chains) cmds.push({ add: { chain: chainObj(chain, ref) } });
  for (const set of t.sets.filter((x) => x.map)) cmds.push(...addSetCommands(set, [], ref));
  for (const chain of t.chains) cmds.push(...ruleCommands(chain, ref));
  return cmds;
}

/** Delete a table of another family (added first, so that a missing one is no error). */
function dropTable(t: TableRef): NftCommand[] {
  const ref = { family: t.family, name: t.name };
  return [{ add: { table: { ...ref } } }, { delete: { table: { ...ref } } }];
}

/**
 * The tables of other families are small (one entry per VM): one that changed is
 * replaced whole, in the same transaction; one that is gone is deleted.
 */
function otherTableCommands(prev: readonly TableSpec[], next: readonly TableSpec[]): NftCommand[] {
  const before = new Map(prev.map((t) => [tableKey(t), t]));
  const after = new Set(next.map(tableKey));
  const cmds: NftCommand[] = [];
  for (const t of prev) if (!after.has(tableKey(t))) cmds.push(...dropTable(t));
  for (const t of next) {
    const p = before.get(tableKey(t));
    if (p === t || (p !== undefined && isDeepStrictEqual(p, t))) continue;
    cmds.push(...tableCommands(t));
  }
  return cmds;
}

/** Packed, sorted and unique: `list` itself; else a sorted, unique packed copy. */
function sortedPacked(list: NftValue[] | PackedIpv4): PackedIpv4 {
  if (ArrayBuffer.isView(list)) {
    let ordered = true;
    for (let i = 1; i < list.length && ordered; i++) ordered = list[i - 1]! < list[i]!;
    if (ordered) return list;
  }
  const sorted = Uint32Array.from(list as ArrayLike<number>).sort();
  let n = 0;
  for (let i = 0; i < sorted.length; i++)
    if (i === 0 || sorted[i] !== sorted[n - 1]) sorted[n++] = sorted[i]!;
  return sorted.subarray(0, n);
}

/**
 * What was removed from and added to a packed address list, by one merge of the two
 * sorted lists (a million entries take milliseconds, not a million JSON keys).
 */
export function diffPacked(
  prev: NftValue[] | PackedIpv4,
  next: NftValue[] | PackedIpv4,
): { removed: PackedIpv4; added: PackedIpv4 } {
  const a = sortedPacked(prev);
  const b = sortedPacked(next);
  const removed = new Uint32Array(a.length);
  const added = new Uint32Array(b.length);
  let r = 0;
  let d = 0;
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (j >= b.length || (i < a.length && a[i]! < b[j]!)) removed[r++] = a[i++]!;
    else if (i >= a.length || b[j]! < a[i]!) added[d++] = b[j++]!;
    else {
      i++;
      j++;
    }
  }
  return { removed: removed.slice(0, r), added: added.slice(0, d) };
}

function nameOf(cmd: NftCommand): string {
  const obj = Object.values(cmd)[0] as Record<string, { name?: string }>;
  return Object.values(obj)[0]?.name ?? '';
}

/** Maps (which refer to chains) go before chains, chains before sets and counters. */
function deleteOrder(a: NftCommand, b: NftCommand): number {
  const rank = (c: NftCommand): number => {
    const obj = (c as { delete: Record<string, unknown> }).delete;
    if ('map' in obj) return 0;
    if ('chain' in obj) return 1;
    return 2;
  };
  return rank(a) - rank(b);
}
