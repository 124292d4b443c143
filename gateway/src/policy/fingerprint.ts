/**
 * Comparing versions of the policy without serialising all of it on every change.
 *
 * A deep-frozen object can never change again, so what is learned about it is kept:
 * its canonical JSON text (`fingerprint`) and that it is deep-frozen. The policy
 * service freezes each policy it puts in force and `share` makes the next one reuse
 * every part that did not change, so one change costs the serialisation of the part
 * it touched, not of every VM and profile. Pure: the memos only ever hold facts about
 * immutable values, so results never depend on what was asked before.
 *
 * All functions here are for JSON data (what the schemas admit): plain objects,
 * arrays, strings, numbers, booleans, null. As in JSON, a property whose value is
 * undefined counts as absent and key order does not matter.
 */

const texts = new WeakMap<object, string>();
const deepFrozen = new WeakSet<object>();

/** Set while serialising when a mutable object was met: its text must not be kept. */
let sawMutable = false;

/** Whether JSON leaves this value out (an object property) or writes null (an array item). */
function absent(v: unknown): boolean {
  return v === undefined || typeof v === 'function' || typeof v === 'symbol';
}

function text(v: unknown): string {
  if (typeof v !== 'object' || v === null) return JSON.stringify(v) ?? 'null';
  const known = texts.get(v);
  if (known !== undefined) return known;
  const outer = sawMutable;
  sawMutable = false;
  let out: string;
  if (Array.isArray(v)) {
    out = '[';
    for (let i = 0; i < v.length; i++) {
      const item: unknown = v[i];
      out += (i === 0 ? '' : ',') + (absent(item) ? 'null' : text(item));
    }
    out += ']';
  } else {
    out = '{';
    let first = true;
    for (const key of Object.keys(v).sort()) {
      const item = (v as Record<string, unknown>)[key];
      if (absent(item)) continue;
      out += (first ? '' : ',') + JSON.stringify(key) + ':' + text(item);
      first = false;
    }
    out += '}';
  }
  const mutable = sawMutable || !Object.isFrozen(v);
  if (!mutable) {
    texts.set(v, out);
    deepFrozen.add(v);
  }
  sawMutable = outer || mutable;
  return out;
}

/**
 * The canonical JSON text of a value: keys sorted, undefined properties left out.
 * Two values have the same fingerprint exactly when they are equal as JSON. '' for
 * undefined. Computed once per deep-frozen object, then remembered.
 */
export function fingerprint(value: unknown): string {
  if (absent(value)) return '';
  sawMutable = false;
  return text(value);
}

/** Whether `value` and everything in it is frozen (primitives are). Remembered once true. */
export function isDeepFrozen(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return true;
  if (deepFrozen.has(value)) return true;
  if (!Object.isFrozen(value)) return false;
  for (const v of Object.values(value)) if (!isDeepFrozen(v)) return false;
  deepFrozen.add(value);
  return true;
}

/** Freeze `value` and everything in it, in place; returns it. Frozen parts are not walked again. */
export function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null || deepFrozen.has(value)) return value;
  Object.freeze(value);
  for (const v of Object.values(value)) deepFreeze(v);
  deepFrozen.add(value);
  return value;
}

/** `value` itself when it is deep-frozen, else a deep-frozen copy (frozen parts are shared, not copied). */
export function frozenCopy<T>(value: T): T {
  if (isDeepFrozen(value)) return value;
  const v = value as object;
  const copy: unknown = Array.isArray(v)
    ? v.map((item: unknown) => frozenCopy(item))
    : Object.fromEntries(Object.entries(v).map(([k, item]) => [k, frozenCopy(item)]));
  return deepFreeze(copy as T);
}

/**
 * A deep copy of JSON data, mutable throughout (frozen parts are copied too). Several
 * times faster than structuredClone for the many small objects of a policy.
 */
export function cloneJson<T>(value: T): T {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) {
    const out: unknown[] = new Array(value.length);
    for (let i = 0; i < value.length; i++) out[i] = cloneJson(value[i] as unknown);
    return out as T;
  }
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) out[key] = cloneJson((value as Record<string, unknown>)[key]);
  return out as T;
}

/**
 * Whether two values are equal as JSON, without serialising them: what
 * `fingerprint(a) === fingerprint(b)` says, only cheaper. Identical objects are equal
 * at once.
 */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) {
    // unequal values JSON still writes alike: NaN, Infinity and null; absent ones
    return (JSON.stringify(a) ?? '') === (JSON.stringify(b) ?? '');
  }
  const ta = texts.get(a);
  if (ta !== undefined) {
    const tb = texts.get(b);
    if (tb !== undefined) return ta === tb;
  }
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    if (a.length !== bb.length) return false;
    for (let i = 0; i < a.length; i++) {
      const x: unknown = a[i];
      const y = bb[i];
      if (!sameJson(absent(x) ? null : x, absent(y) ? null : y)) return false;
    }
    return true;
  }
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  let count = 0;
  for (const key of Object.keys(ra)) {
    const x = ra[key];
    if (absent(x)) continue;
    count++;
    const y = Object.hasOwn(rb, key) ? rb[key] : undefined;
    if (absent(y) || !sameJson(x, y)) return false;
  }
  for (const key of Object.keys(rb)) if (!absent(rb[key])) count--;
  return count === 0;
}

/** The items of a list by name; null when some item has no name or names repeat. */
function namesOf(list: readonly unknown[]): Map<string, unknown> | null {
  const map = new Map<string, unknown>();
  for (const item of list) {
    const name = nameOf(item);
    if (name === undefined || map.has(name)) return null;
    map.set(name, item);
  }
  return map;
}

function nameOf(item: unknown): string | undefined {
  const name = typeof item === 'object' && item !== null ? (item as { name?: unknown }).name : undefined;
  return typeof name === 'string' ? name : undefined;
}

/**
 * Structural sharing: `next`, with each part that is equal (as JSON) to the
 * corresponding part of `prev` replaced by prev's. Returns `prev` itself when the two
 * are equal, so `share(prev, next) === prev` means "nothing changed". Items of arrays
 * of named objects (VMs, profiles, schedules) correspond by name, so removing or
 * moving one does not unshare the others; other arrays correspond by index.
 *
 * `next` is changed in place (its parts are swapped for prev's equal ones; frozen parts
 * of it are left as they are): pass a draft that is yours. `prev` is never changed.
 */
export function share<T>(prev: T, next: T): T {
  return shareValue(prev, next) as T;
}

function shareValue(prev: unknown, next: unknown): unknown {
  if (prev === next) return prev;
  if (
    typeof prev !== 'object' ||
    typeof next !== 'object' ||
    prev === null ||
    next === null ||
    Array.isArray(prev) !== Array.isArray(next)
  ) {
    return sameJson(prev, next) ? prev : next;
  }
  // parts are swapped in place; a frozen part of `next` keeps its own (equal) children
  const writable = !Object.isFrozen(next);
  if (Array.isArray(next)) {
    const p = prev as unknown[];
    // made when first needed; null: prev's items cannot be told apart by name
    let names: Map<string, unknown> | null | undefined;
    let same = p.length === next.length;
    for (let i = 0; i < next.length; i++) {
      const item: unknown = next[i];
      // named items (VMs, profiles, schedules) correspond by name, usually at the same index
      const name = nameOf(item);
      let old = p[i];
      if (name !== undefined && nameOf(old) !== name) {
        if (names === undefined) names = namesOf(p);
        old = names?.get(name);
      }
      const shared = old === undefined ? item : shareValue(old, item);
      if (shared !== item && writable) next[i] = shared;
      if (shared !== p[i]) same = false;
    }
    return same ? prev : next;
  }
  const p = prev as Record<string, unknown>;
  const n = next as Record<string, unknown>;
  let same = true;
  let count = 0;
  for (const key of Object.keys(n)) {
    const item = n[key];
    if (absent(item)) continue;
    count++;
    const old = Object.hasOwn(p, key) ? p[key] : undefined;
    if (absent(old)) {
      same = false;
      continue;
    }
    const shared = shareValue(old, item);
    if (shared !== item && writable) n[key] = shared;
    if (shared !== old) same = false;
  }
  if (same) for (const key of Object.keys(p)) if (!absent(p[key])) count--;
  return same && count === 0 ? prev : next;
}
