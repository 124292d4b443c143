import { randomBytes } from 'node:crypto';
import type { ListKind } from './model.js';

/**
 * A compact, immutable index of listed domains for the hashed suffix walk.
 *
 * Names are hashed right to left, one byte at a time, so a single pass over a queried
 * name yields the hash of every suffix that starts at a label boundary
 * (`com`, `example.com`, `a.example.com`). Each listed domain is stored as a 64-bit
 * hash (two independent 32-bit hashes) in an open-addressing table whose value is the
 * set of lists the domain is on. No strings are kept: 1,000,000 entries take 24 MiB and a lookup is one probe per label. The seeds are random per process, so
 * nobody can craft a colliding name; a collision (about 1 in 10^13 per probe at 1M
 * entries) could only make a name blocked, never allowed (allow entries are compared
 * as strings).
 */

const SEEDS = randomBytes(8);
/** Start value of the first hash; per process. */
export const SEED1 = SEEDS.readUInt32LE(0) | 0;
/** Start value of the second hash; per process. */
export const SEED2 = SEEDS.readUInt32LE(4) | 0;
export const P1 = 0x01000193;
export const P2 = 0x27d4eb2d;

/** Final avalanche (murmur3 fmix32), applied per suffix. */
export function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** One step of both running hashes over byte `c`. Inlined by hand in the hot loops. */
export function step1(h: number, c: number): number {
  return Math.imul(h ^ c, P1);
}
export function step2(h: number, c: number): number {
  h = Math.imul(h ^ c, P2);
  return h ^ (h >>> 15);
}

/** The two finished hashes of a whole (lower-case, dotless-ended) name. For tests and small callers. */
export function hashName(name: string): [number, number] {
  let h1 = SEED1;
  let h2 = SEED2;
  for (let i = name.length - 1; i >= 0; i--) {
    const c = name.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, P1);
    h2 = Math.imul(h2 ^ c, P2);
    h2 ^= h2 >>> 15;
  }
  return [fmix(h1), fmix(h2 ^ name.length)];
}

/** One list as the loader produced it: hashes only. */
export interface HashedList {
  readonly name: string;
  readonly kind: ListKind;
  /** Pairs of finished hashes, `[h1, h2, h1, h2, …]`, `2 * count` long (may be longer). */
  readonly hashes: Uint32Array;
  readonly count: number;
}

/** Where a list sits in the index: its id is its position in `lists`. */
export interface IndexedList {
  readonly id: number;
  readonly name: string;
  readonly kind: ListKind;
  /** Distinct entries in this list. */
  readonly entries: number;
}

const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class DomainIndex {
  /** Lists in the index, by id. */
  readonly lists: readonly IndexedList[];
  /** Distinct domains in the index. */
  readonly size: number;
  /** Bumped each time an index is built; lets compiled policies notice a swap. */
  readonly generation: number;
  readonly #mask: number;
  /** Slot i holds its two hashes at [2i, 2i+1], side by side so a probe touches one cache line; (0, 0) = empty. */
  readonly #keys: Uint32Array;
  /** Slot i's combo id. */
  readonly #val: Uint32Array;
  /** Combo id → the list ids a domain is on. */
  readonly #combos: readonly (readonly number[])[];

  static #generations = 0;

  private constructor(
    lists: IndexedList[],
    size: number,
    mask: number,
    keys: Uint32Array,
    val: Uint32Array,
    combos: number[][],
  ) {
    this.lists = lists;
    this.size = size;
    this.#mask = mask;
    this.#keys = keys;
    this.#val = val;
    this.#combos = combos;
    this.generation = ++DomainIndex.#generations;
  }

  /** An index with no lists. */
  static empty(): DomainIndex {
    return new DomainIndex([], 0, 0, new Uint32Array(2), new Uint32Array(1), [[]]);
  }

  /**
   * Build an index from hashed lists. Yields to the event loop every `chunk` entries
   * (default 65,536) so a running filter keeps answering during a reload.
   */
  static async build(input: readonly HashedList[], chunk = 65_536): Promise<DomainIndex> {
    let total = 0;
    for (const l of input) total += l.count;
    let cap = 16;
    while (cap < total * 2) cap *= 2;
    const mask = cap - 1;
    const keys = new Uint32Array(cap * 2);
    const val = new Uint32Array(cap);
    const combos: number[][] = [[]];
    const comboIds = new Map<string, number>();
    const single: number[] = [];
    const lists: IndexedList[] = [];
    let size = 0;
    let done = 0;

    input.forEach((l, id) => {
      single[id] = combos.length;
      combos.push([id]);
      comboIds.set(String(id), single[id] as number);
    });

    for (let id = 0; id < input.length; id++) {
      const l = input[id] as HashedList;
      const hashes = l.hashes;
      let distinct = 0;
      for (let e = 0; e < l.count; e++) {
        const a = hashes[2 * e] as number;
        const b = (hashes[2 * e + 1] as number) || (a === 0 ? 1 : 0);
        let s = a & mask;
        for (;;) {
          const ka = keys[2 * s] as number;
          const kb = keys[2 * s + 1] as number;
          if (ka === 0 && kb === 0) {
            keys[2 * s] = a;
            keys[2 * s + 1] = b;
            val[s] = single[id] as number;
            size++;
            distinct++;
            break;
          }
          if (ka === a && kb === b) {
            const v = val[s] as number;
            const ids = combos[v] as number[];
            if (!ids.includes(id)) {
              distinct++;
              const merged = [...ids, id];
              const key = merged.join(',');
              let c = comboIds.get(key);
              if (c === undefined) {
                c = combos.length;
                combos.push(merged);
                comboIds.set(key, c);
              }
              val[s] = c;
            }
            break;
          }
          s = (s + 1) & mask;
        }
        if (++done % chunk === 0) await yieldToLoop();
      }
      lists.push({ id, name: l.name, kind: l.kind, entries: distinct });
    }
    return new DomainIndex(lists, size, mask, keys, val, combos);
  }

  /** The list ids a hashed domain is on; empty when it is on none. */
  lookup(h1: number, h2: number): readonly number[] {
    const keys = this.#keys;
    const mask = this.#mask;
    const b = h2 || (h1 === 0 ? 1 : 0);
    let s = h1 & mask;
    for (;;) {
      const ka = keys[2 * s] as number;
      const kb = keys[2 * s + 1] as number;
      if (ka === h1 && kb === b) return this.#combos[this.#val[s] as number] as number[];
      if (ka === 0 && kb === 0) return EMPTY;
      s = (s + 1) & mask;
    }
  }

  /** The list with this kind and name, if indexed. */
  find(kind: ListKind, name: string): IndexedList | undefined {
    return this.lists.find((l) => l.kind === kind && l.name === name);
  }
}

const EMPTY: readonly number[] = Object.freeze([]);
