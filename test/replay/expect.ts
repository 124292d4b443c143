/**
 * The checks of the suricata-verify corpus (expect.json), evaluated the way its README
 * says: a check counts the events for which every key of `match` holds.
 *
 * - `a.b[0].c`: a dotted path, `name[i]` indexes a list; the value there must equal the
 *   given one; a missing path is null.
 * - `has-key: PATH` (or a list of paths): the path exists and is not null.
 * - `not-has-key`: it does not.
 */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface Check {
  readonly match: Readonly<Record<string, Json>>;
  readonly count: number;
}

export interface ExpectFile {
  readonly name: string;
  readonly source: string;
  readonly simulate_ips: boolean;
  /** `neutral` (use /etc/suricata/suricata.yaml) or `suricata.yaml` (the folder's own). */
  readonly config: string;
  readonly checks: readonly Check[];
}

/** One path segment: an object key, then any number of list indexes. */
function segments(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  for (const part of path.split('.')) {
    const m = /^([^[\]]*)((?:\[\d+\])*)$/.exec(part);
    if (!m) {
      out.push(part);
      continue;
    }
    if (m[1] !== '') out.push(m[1] as string);
    for (const idx of (m[2] as string).matchAll(/\[(\d+)\]/g)) out.push(Number(idx[1]));
  }
  return out;
}

/** The value at `path` in `value`, or null when any step is missing. */
export function valueAt(value: Json, path: string): Json {
  let cur: Json = value;
  for (const seg of segments(path)) {
    if (typeof seg === 'number') {
      if (!Array.isArray(cur) || seg >= cur.length) return null;
      cur = cur[seg] as Json;
    } else {
      if (cur === null || typeof cur !== 'object' || Array.isArray(cur) || !Object.hasOwn(cur, seg))
        return null;
      cur = cur[seg] as Json;
    }
  }
  return cur;
}

/** JSON equality: same type, same members, arrays in order, objects in any key order. */
export function jsonEqual(a: Json, b: Json): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    return (
      Array.isArray(a) &&
      Array.isArray(b) &&
      a.length === b.length &&
      a.every((x, i) => jsonEqual(x, b[i] as Json))
    );
  }
  const ka = Object.keys(a);
  return (
    ka.length === Object.keys(b).length &&
    ka.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k] as Json, b[k] as Json))
  );
}

function paths(v: Json): string[] {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v)) return v.filter((p): p is string => typeof p === 'string');
  return [];
}

/** Does `event` satisfy every key of `match`? */
export function matches(event: Json, match: Readonly<Record<string, Json>>): boolean {
  for (const [key, expected] of Object.entries(match)) {
    if (key === 'has-key') {
      if (!paths(expected).every((p) => valueAt(event, p) !== null)) return false;
    } else if (key === 'not-has-key') {
      if (!paths(expected).every((p) => valueAt(event, p) === null)) return false;
    } else if (!jsonEqual(valueAt(event, key), expected)) {
      return false;
    }
  }
  return true;
}

/** How many of `events` satisfy `match`. */
export function countMatching(events: readonly Json[], match: Readonly<Record<string, Json>>): number {
  let n = 0;
  for (const e of events) if (matches(e, match)) n += 1;
  return n;
}
