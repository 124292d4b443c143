/**
 * A typed subset of the libnftables JSON schema (libnftables-json(5)): what the
 * compiler emits and what the applier reads back. Everything is plain JSON, except
 * that the elements of big IPv4 address lists may be packed (`PackedIpv4`), which
 * `nftJsonPieces` writes out as the JSON array of numbers it stands for.
 */

export type Family = 'inet' | 'ip' | 'ip6' | 'arp' | 'bridge' | 'netdev';

/**
 * IPv4 addresses as 32-bit integers (nft's JSON takes an address as a number), packed:
 * a million of them take 4 MB instead of a JS array's 8 to 12.
 */
export type PackedIpv4 = Uint32Array;

export interface TableRef {
  readonly family: Family;
  readonly name: string;
}

export type Verdict =
  | { accept: null }
  | { drop: null }
  | { continue: null }
  | { return: null }
  | { jump: { target: string } }
  | { goto: { target: string } };

/** An expression value: a literal, a set of literals, a range, a prefix, a concatenation… */
export type NftValue =
  | string
  | number
  | boolean
  | { set: NftValue[] | string }
  | { range: [NftValue, NftValue] }
  | { prefix: { addr: string; len: number } }
  | { concat: NftValue[] }
  | { payload: { protocol: string; field: string } }
  | { meta: { key: string } }
  | { ct: { key: string; dir?: 'original' | 'reply' } }
  | { elem: { val: NftValue; timeout?: number; expires?: number; comment?: string } }
  | { map: { key: NftValue; data: string | NftValue } }
  | { '&': [NftValue, NftValue] }
  | { '|': [NftValue, NftValue] }
  | { '^': [NftValue, NftValue] };

export type NftStatement =
  | { match: { op: '==' | '!=' | '<' | '>' | '<=' | '>=' | 'in'; left: NftValue; right: NftValue } }
  | Verdict
  | {
      counter:
        null | string | { packets: number; bytes: number } | { map: { key: NftValue; data: NftValue } };
    }
  | { reject: null | { type?: string; expr?: string } }
  | { masquerade: null | Record<string, unknown> }
  | { redirect: { port?: number } | null }
  | { mangle: { key: NftValue; value: NftValue } }
  | { queue: { num?: number | { range: [number, number] }; flags?: string | string[] } }
  | { xt: { type: string; name: string } }
  | { vmap: { key: NftValue; data: string | NftValue } }
  | {
      limit: {
        rate: number;
        per: string;
        rate_unit?: string;
        burst?: number;
        burst_unit?: string;
        inv?: boolean;
      };
    }
  | { log: { prefix?: string; group?: number } }
  | { notrack: null }
  | { set: { op: 'add' | 'update' | 'delete'; elem: NftValue; set: string; stmt?: NftStatement[] } };

export interface TableObj extends TableRef {
  readonly handle?: number;
}

export interface ChainObj {
  readonly family: Family;
  readonly table: string;
  readonly name: string;
  readonly type?: 'filter' | 'nat' | 'route';
  readonly hook?: 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting' | 'ingress';
  readonly prio?: number;
  readonly policy?: 'accept' | 'drop';
  readonly handle?: number;
}

export interface RuleObj {
  readonly family: Family;
  readonly table: string;
  readonly chain: string;
  readonly expr: NftStatement[];
  readonly comment?: string;
  readonly handle?: number;
}

export interface SetObj {
  readonly family: Family;
  readonly table: string;
  readonly name: string;
  readonly type: string | string[];
  readonly flags?: string[];
  readonly timeout?: number;
  readonly elem?: NftValue[];
  readonly comment?: string;
  readonly handle?: number;
  readonly size?: number;
}

export interface MapObj extends SetObj {
  readonly map: string;
}

export interface ElementObj {
  readonly family: Family;
  readonly table: string;
  readonly name: string;
  readonly elem: NftValue[] | PackedIpv4;
}

export interface CounterObj {
  readonly family: Family;
  readonly table: string;
  readonly name: string;
  readonly packets?: number;
  readonly bytes?: number;
  readonly handle?: number;
}

export type NftObject =
  | { table: TableObj }
  | { chain: ChainObj }
  | { rule: RuleObj }
  | { set: SetObj }
  | { map: MapObj }
  | { element: ElementObj }
  | { counter: CounterObj };

export type NftCommand =
  | { add: NftObject }
  | { create: NftObject }
  | { insert: NftObject }
  | { replace: NftObject }
  | { delete: NftObject }
  | { flush: NftObject }
  | { reset: NftObject }
  | { list: NftObject | { ruleset: null } | { table: TableRef } };

/** What `nft -j list …` returns. */
export interface NftListing {
  readonly nftables: ReadonlyArray<Record<string, unknown>>;
}

/** Priority names as numbers (nft(8) "Standard priority names"). */
export const PRIO = {
  raw: -300,
  mangle: -150,
  dstnat: -100,
  filter: 0,
  security: 50,
  srcnat: 100,
} as const;

// --- the table model: what the compiler makes and the applier puts into the kernel ---

/** A set or verdict map of the table. */
export interface SetSpec {
  readonly name: string;
  readonly type: string | string[];
  readonly flags: string[];
  /** For maps: the data type (`verdict`). */
  readonly map?: string;
  /**
   * Elements the compiler owns. For maps: `[key, data]` pairs. Big IPv4 lists come
   * packed, sorted and unique (as `groupByPrefix` makes them).
   */
  readonly elements: NftValue[] | PackedIpv4;
  /** Elements are added at run time (DNS answers, IPS blocks); the compiler never lists them. */
  readonly dynamic?: boolean;
  /** Most elements the set holds (a fixed-size hash in the kernel: faster to load). */
  readonly size?: number;
  readonly comment?: string;
}

/** Where a base chain hooks into netfilter. */
export interface BaseHook {
  readonly type: 'filter' | 'nat';
  readonly hook: 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting';
  readonly prio: number;
  readonly policy: 'accept' | 'drop';
}

/** A chain of the table: its rules in order; a base chain has a hook. */
export interface ChainSpec {
  readonly name: string;
  readonly base?: BaseHook;
  readonly rules: NftStatement[][];
}

/**
 * The whole table as compiled: named counters, sets and chains, in the order made;
 * and the service's small tables of other families (`tables`).
 */
export interface Ruleset {
  readonly counters: string[];
  readonly sets: SetSpec[];
  readonly chains: ChainSpec[];
  /**
   * Tables of other families the service owns beside `inet portcullis` (the guest
   * bridge's `bridge portcullis`). Small: the applier replaces such a table whole,
   * in the same transaction, whenever it changed.
   */
  readonly tables?: readonly TableSpec[];
  /**
   * Tables in nft's text syntax, for what nft 1.0.6's JSON cannot say (sets keyed by
   * `typeof` of raw payloads). Each is replaced whole, in a transaction of its own right
   * after the JSON one, when it changed or the JSON table was replaced.
   */
  readonly textTables?: readonly TextTable[];
}

/** A small table given in nft's text syntax (see `Ruleset.textTables`). */
export interface TextTable {
  readonly family: Exclude<Family, 'inet'>;
  readonly name: string;
  /** Its named counters (declared in `body` too): what a drift check looks for. */
  readonly counters: readonly string[];
  /** What goes between `table <family> <name> {` and `}`: sets, counters, chains. */
  readonly body: string;
}

/** A table of another family than `inet`, with its own counters, sets and chains. */
export interface TableSpec {
  readonly family: Exclude<Family, 'inet'>;
  readonly name: string;
  readonly counters: readonly string[];
  readonly sets: readonly SetSpec[];
  readonly chains: readonly ChainSpec[];
}

/** How queued (IPS) traffic reaches Suricata. */
export interface QueueSettings {
  /** `nft`: the nft queue statement; `xt`: mark here, the xtables NFQUEUE target queues. */
  readonly kind: 'nft' | 'xt';
  /** NFQUEUE number. */
  readonly num: number;
}
