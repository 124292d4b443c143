import type { YoutubeRestriction } from './model.js';

/**
 * SafeSearch by DNS: the search engines' names are answered as a CNAME to the engine's
 * safe endpoint (plus the endpoint's addresses), which the engine serves with
 * SafeSearch locked on. Names match exactly: `www.google.com` is rewritten,
 * `mail.google.com` is not. Pure.
 */

/** Safe endpoints, per engine. Override any of them to point the lab at a test host. */
export interface SafeSearchTargets {
  /** Default forcesafesearch.google.com. */
  readonly google: string;
  /** Default restrict.youtube.com. */
  readonly youtubeStrict: string;
  /** Default restrictmoderate.youtube.com. */
  readonly youtubeModerate: string;
  /** Default strict.bing.com. */
  readonly bing: string;
  /** Default safe.duckduckgo.com. */
  readonly duckduckgo: string;
  /** Default safesearch.pixabay.com. */
  readonly pixabay: string;
  /** Default familysearch.yandex.ru. */
  readonly yandex: string;
}

export const DEFAULT_SAFESEARCH_TARGETS: SafeSearchTargets = Object.freeze({
  google: 'forcesafesearch.google.com',
  youtubeStrict: 'restrict.youtube.com',
  youtubeModerate: 'restrictmoderate.youtube.com',
  bing: 'strict.bing.com',
  duckduckgo: 'safe.duckduckgo.com',
  pixabay: 'safesearch.pixabay.com',
  yandex: 'familysearch.yandex.ru',
});

type Engine = 'youtube' | 'bing' | 'duckduckgo' | 'pixabay' | 'yandex';

const EXACT: ReadonlyMap<string, Engine> = new Map<string, Engine>([
  ['www.youtube.com', 'youtube'],
  ['m.youtube.com', 'youtube'],
  ['youtubei.googleapis.com', 'youtube'],
  ['youtube.googleapis.com', 'youtube'],
  ['www.youtube-nocookie.com', 'youtube'],
  ['www.bing.com', 'bing'],
  ['bing.com', 'bing'],
  ['duckduckgo.com', 'duckduckgo'],
  ['www.duckduckgo.com', 'duckduckgo'],
  ['start.duckduckgo.com', 'duckduckgo'],
  ['html.duckduckgo.com', 'duckduckgo'],
  ['pixabay.com', 'pixabay'],
  ['www.pixabay.com', 'pixabay'],
  ...['yandex.ru', 'yandex.com', 'yandex.ua', 'yandex.by', 'yandex.kz', 'yandex.com.tr', 'ya.ru'].flatMap(
    (d): [string, Engine][] => [
      [d, 'yandex'],
      [`www.${d}`, 'yandex'],
    ],
  ),
]);

/**
 * Google's search hosts: google.<tld>, google.co.<cc>, google.com.<cc>, with or without
 * `www.` (covers every country domain Google runs search on, and google.cat).
 */
const GOOGLE = /^(?:www\.)?google\.(?:com|cat|[a-z]{2}|co\.[a-z]{2}|com\.[a-z]{2})$/;

export class SafeSearch {
  readonly targets: SafeSearchTargets;
  readonly #targetNames: ReadonlySet<string>;

  /** @param targets overrides of the default safe endpoints (lower-case names, no trailing dot). */
  constructor(targets: Partial<SafeSearchTargets> = {}) {
    const t = { ...DEFAULT_SAFESEARCH_TARGETS };
    for (const [k, v] of Object.entries(targets) as [keyof SafeSearchTargets, string | undefined][]) {
      if (v !== undefined) t[k] = v.toLowerCase().replace(/\.$/, '');
    }
    this.targets = Object.freeze(t);
    this.#targetNames = new Set(Object.values(this.targets));
  }

  /** The safe endpoint for `name` (lower-case, no trailing dot), or undefined when it is not a search name. */
  target(name: string, youtube: YoutubeRestriction = 'strict'): string | undefined {
    if (this.#targetNames.has(name)) return undefined;
    const engine = EXACT.get(name);
    if (engine !== undefined) {
      if (engine === 'youtube')
        return youtube === 'moderate' ? this.targets.youtubeModerate : this.targets.youtubeStrict;
      return this.targets[engine];
    }
    if ((name.charCodeAt(0) === 0x67 || name.charCodeAt(0) === 0x77) && GOOGLE.test(name))
      return this.targets.google;
    return undefined;
  }
}
