import { DomainIndex, fmix, P1, P2, SEED1, SEED2, hashName } from './domain-index.js';
import type { ClientPolicy, Verdict } from './model.js';
import { SafeSearch } from './safesearch.js';

/**
 * The name matcher: DNS name + client policy → verdict. Pure (no I/O, no clock):
 * the same index, policy and name always give the same verdict.
 *
 * Precedence, first that applies:
 * 1. bypass closing, for every client: the Firefox canary and Apple Private Relay
 *    names answer NXDOMAIN, DDR (`_dns.resolver.arpa`) answers NODATA;
 * 2. `paused` → block;
 * 3. a custom `allow` entry at least as specific as any `deny` entry → allow
 *    (SafeSearch still rewrites);
 * 4. `allowlistOnly` → block;
 * 5. custom `deny` → block;
 * 6. a DoH endpoint list entry, for clients with `blockDoh` → NXDOMAIN;
 * 7. a blocked service list, then a blocked category list → block
 *    (the most specific entry is reported);
 * 8. SafeSearch → rewrite to the safe endpoint;
 * 9. allow.
 */

/** Verdicts for names that would open a way around this resolver; applied to every client. */
const BYPASS: ReadonlyMap<string, Verdict> = new Map<string, Verdict>([
  [
    'use-application-dns.net',
    { action: 'nxdomain', reason: { kind: 'canary', entry: 'use-application-dns.net' } },
  ],
  ['mask.icloud.com', { action: 'nxdomain', reason: { kind: 'private-relay', entry: 'mask.icloud.com' } }],
  [
    'mask-h2.icloud.com',
    { action: 'nxdomain', reason: { kind: 'private-relay', entry: 'mask-h2.icloud.com' } },
  ],
  [
    'mask-canary.icloud.com',
    { action: 'nxdomain', reason: { kind: 'private-relay', entry: 'mask-canary.icloud.com' } },
  ],
  ['_dns.resolver.arpa', { action: 'nodata', reason: { kind: 'ddr', entry: '_dns.resolver.arpa' } }],
]);

/** The default verdict; shared so the fast path allocates nothing. */
export const ALLOW: Verdict = Object.freeze({ action: 'allow' });
const PAUSED: Verdict = Object.freeze({ action: 'block', reason: Object.freeze({ kind: 'paused' }) });

/** Ranks of a blocked list; lower wins. 0 = not blocked for this client. */
const RANK_DOH = 1;
const RANK_SERVICE = 2;
const RANK_CATEGORY = 3;

interface Compiled {
  readonly paused: boolean;
  readonly allowlistOnly: boolean;
  readonly safeSearch: boolean;
  readonly youtube: 'strict' | 'moderate';
  /** Per list id: its rank for this client. */
  readonly rank: Uint8Array;
  readonly anyList: boolean;
  /** Custom entries by suffix key. */
  readonly allow: ReadonlyMap<number, string>;
  readonly deny: ReadonlyMap<number, string>;
  /** Names in the policy with no list loaded under them. */
  readonly missing: readonly string[];
}

/** A 53-bit key from the two suffix hashes, exact in a double. */
const key = (h1: number, h2: number): number => h1 * 0x200000 + (h2 >>> 11);

/** Lower-case, strip `*.`, a leading and a trailing dot. */
export function normaliseDomain(d: string): string {
  let s = d.trim().toLowerCase();
  if (s.startsWith('*.')) s = s.slice(2);
  else if (s.startsWith('.')) s = s.slice(1);
  if (s.endsWith('.')) s = s.slice(0, -1);
  return s;
}

function entryMap(entries: readonly string[] | undefined): Map<number, string> {
  const m = new Map<number, string>();
  for (const e of entries ?? []) {
    const d = normaliseDomain(e);
    if (d === '') continue;
    const [h1, h2] = hashName(d);
    m.set(key(h1, h2), d);
  }
  return m;
}

export class NameMatcher {
  readonly index: DomainIndex;
  readonly safeSearch: SafeSearch;
  readonly #compiled = new WeakMap<ClientPolicy, Compiled>();

  /**
   * @param index listed domains (categories, services, DoH endpoints); default none.
   * @param safeSearch the SafeSearch endpoints; default the engines' public ones.
   */
  constructor(index: DomainIndex = DomainIndex.empty(), safeSearch: SafeSearch = new SafeSearch()) {
    this.index = index;
    this.safeSearch = safeSearch;
  }

  /** Names in `policy.categories` / `policy.services` that no loaded list has (they block nothing). */
  missingLists(policy: ClientPolicy): readonly string[] {
    return this.#compile(policy).missing;
  }

  /**
   * The verdict for one name.
   * @param name lower-case, without the trailing dot (as the wire decoder gives it).
   */
  verdict(name: string, policy: ClientPolicy): Verdict {
    const bypass = BYPASS.get(name);
    if (bypass !== undefined) return bypass;
    const cp = this.#compile(policy);
    if (cp.paused) return PAUSED;

    const lookupLists = cp.anyList;
    const custom = cp.allow.size > 0 || cp.deny.size > 0;
    let allowAt = -1;
    let denyAt = -1;
    let bestRank = 0;
    let bestAt = -1;
    let bestList = -1;

    if (lookupLists || custom) {
      const len = name.length;
      const index = this.index;
      const rank = cp.rank;
      let h1 = SEED1;
      let h2 = SEED2;
      for (let i = len - 1; i >= 0; i--) {
        const c = name.charCodeAt(i);
        h1 = Math.imul(h1 ^ c, P1);
        h2 = Math.imul(h2 ^ c, P2);
        h2 ^= h2 >>> 15;
        if (i !== 0 && name.charCodeAt(i - 1) !== 0x2e) continue;
        const f1 = fmix(h1);
        const f2 = fmix(h2 ^ (len - i));
        if (custom) {
          const k = key(f1, f2);
          // hashes only pick the candidate; the string decides
          if (cp.allow.get(k) === name.slice(i)) allowAt = i;
          if (cp.deny.get(k) === name.slice(i)) denyAt = i;
        }
        if (lookupLists) {
          const ids = index.lookup(f1, f2);
          for (let j = 0; j < ids.length; j++) {
            const id = ids[j] as number;
            const r = rank[id] as number;
            // a lower rank wins; on a tie, the more specific entry (found later in this walk)
            if (r !== 0 && (bestRank === 0 || r <= bestRank)) {
              bestRank = r;
              bestAt = i;
              bestList = id;
            }
          }
        }
      }
    }

    if (allowAt >= 0 && allowAt <= (denyAt < 0 ? allowAt : denyAt)) {
      const ss = cp.safeSearch ? this.#rewrite(name, cp) : undefined;
      return ss ?? { action: 'allow', reason: { kind: 'custom', list: 'allow', entry: name.slice(allowAt) } };
    }
    if (cp.allowlistOnly) return { action: 'block', reason: { kind: 'allowlist' } };
    if (denyAt >= 0)
      return { action: 'block', reason: { kind: 'custom', list: 'deny', entry: name.slice(denyAt) } };
    if (bestRank !== 0) {
      const list = this.index.lists[bestList];
      const entry = name.slice(bestAt);
      if (bestRank === RANK_DOH)
        return { action: 'nxdomain', reason: { kind: 'doh', list: list?.name ?? 'doh', entry } };
      return {
        action: 'block',
        reason: { kind: bestRank === RANK_SERVICE ? 'service' : 'category', list: list?.name ?? '', entry },
      };
    }
    if (cp.safeSearch) {
      const ss = this.#rewrite(name, cp);
      if (ss !== undefined) return ss;
    }
    return ALLOW;
  }

  #rewrite(name: string, cp: Compiled): Verdict | undefined {
    const target = this.safeSearch.target(name, cp.youtube);
    if (target === undefined) return undefined;
    return { action: 'rewrite', target, reason: { kind: 'safesearch', entry: name } };
  }

  #compile(policy: ClientPolicy): Compiled {
    const hit = this.#compiled.get(policy);
    if (hit !== undefined) return hit;
    const rank = new Uint8Array(Math.max(1, this.index.lists.length));
    const missing: string[] = [];
    const mark = (names: readonly string[] | undefined, kind: 'category' | 'service', r: number): void => {
      for (const n of names ?? []) {
        const l = this.index.find(kind, n);
        if (l === undefined) missing.push(`${kind}:${n}`);
        else if (rank[l.id] === 0 || (rank[l.id] as number) > r) rank[l.id] = r;
      }
    };
    mark(policy.services, 'service', RANK_SERVICE);
    mark(policy.categories, 'category', RANK_CATEGORY);
    if (policy.blockDoh === true) {
      for (const l of this.index.lists) if (l.kind === 'doh') rank[l.id] = RANK_DOH;
    }
    const compiled: Compiled = {
      paused: policy.paused === true,
      allowlistOnly: policy.allowlistOnly === true,
      safeSearch: policy.safeSearch === true,
      youtube: policy.youtube ?? 'strict',
      rank,
      anyList: rank.some((r) => r !== 0),
      allow: entryMap(policy.allow),
      deny: entryMap(policy.deny),
      missing,
    };
    this.#compiled.set(policy, compiled);
    return compiled;
  }
}
