import { rng } from './fixtures.js';

/**
 * The material of bench:bundle, generated the way a vendor's feed looks rather than as
 * copies of one rule: rules of several protocols and shapes (HTTP URIs, hosts and user
 * agents, TLS SNI, DNS queries, TCP payload bytes with offsets, some PCRE), each with its
 * own content and SID; domain names of 2 to 4 labels over many TLDs, spread over
 * categories the way real block lists are (adult the biggest). Deterministic: the same
 * seed gives the same bundle, so runs are comparable.
 */

const SYLLABLES = [
  'ka',
  'lo',
  'mi',
  'ra',
  'ne',
  'to',
  'sa',
  'vi',
  'du',
  'pe',
  'ri',
  'mo',
  'za',
  'xe',
  'qu',
  'bri',
  'tan',
  'gol',
  'fer',
  'nix',
  'pla',
  'dro',
  'ven',
  'sto',
  'kri',
  'mar',
  'lux',
  'tor',
];
const WORDS = [
  'cloud',
  'cdn',
  'media',
  'stream',
  'shop',
  'cash',
  'bet',
  'play',
  'date',
  'chat',
  'free',
  'hot',
  'win',
  'live',
  'secure',
  'login',
  'update',
  'track',
  'ads',
  'click',
  'mail',
  'news',
  'video',
  'pics',
  'game',
  'casino',
  'poker',
  'match',
  'love',
  'cam',
  'tube',
  'files',
  'drop',
];
const TLDS = [
  'com',
  'com',
  'com',
  'net',
  'net',
  'org',
  'info',
  'xyz',
  'ru',
  'de',
  'top',
  'io',
  'biz',
  'online',
  'site',
  'club',
  'co.uk',
  'com.br',
  'cn',
  'pl',
  'fr',
  'nl',
  'tk',
  'me',
  'tv',
];
const SUBS = ['www', 'm', 'cdn', 'img', 'api', 'static', 'mail', 'login', 'go', 'track'];
const CLASSTYPES = [
  'trojan-activity',
  'policy-violation',
  'web-application-attack',
  'bad-unknown',
  'attempted-admin',
  'misc-activity',
  'command-and-control',
  'exploit-kit',
];
const METHODS = ['GET', 'POST', 'PUT'];
const AGENTS = ['Mozilla/4.0 (compatible|3b| ', 'python-requests/', 'curl/', 'Go-http-client/', 'WinHTTP'];

const pick = <T>(next: () => number, xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!;

function word(next: () => number): string {
  const n = 2 + Math.floor(next() * 3);
  let w = '';
  for (let i = 0; i < n; i++) w += pick(next, SYLLABLES);
  return next() < 0.4 ? `${w}${pick(next, WORDS)}` : w;
}

/** A hex byte string for `content:"|..|"`, `n` bytes. */
function bytes(next: () => number, n: number): string {
  const out: string[] = [];
  for (let i = 0; i < n; i++)
    out.push(
      Math.floor(next() * 256)
        .toString(16)
        .padStart(2, '0'),
    );
  return out.join(' ');
}

/**
 * `count` Suricata rules with distinct SIDs from `firstSid`, each with content of its own.
 * @param seed PRNG seed (default 11).
 */
export function benchRules(count: number, firstSid = 3_100_000, seed = 11): string[] {
  const next = rng(seed);
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const sid = firstSid + i;
    const rev = 1 + Math.floor(next() * 5);
    const ct = pick(next, CLASSTYPES);
    const tag = `${word(next)}${i.toString(36)}`;
    const tail = `classtype:${ct}; sid:${sid}; rev:${rev};`;
    const kind = next();
    if (kind < 0.3) {
      const method = pick(next, METHODS);
      const path = `/${word(next)}/${tag}${next() < 0.5 ? '.php' : '.js'}`;
      const pcre = next() < 0.15 ? ` pcre:"/\\/${tag}\\.(php|js)\\?[a-z]{2,8}=[0-9]+/i";` : '';
      out.push(
        `alert http $HOME_NET any -> $EXTERNAL_NET any (msg:"BENCH TROJAN ${tag} check-in"; flow:established,to_server; http.method; content:"${method}"; http.uri; content:"${path}"; fast_pattern;${pcre} ${tail})`,
      );
    } else if (kind < 0.45) {
      out.push(
        `alert http $HOME_NET any -> $EXTERNAL_NET any (msg:"BENCH user agent ${tag}"; flow:established,to_server; http.user_agent; content:"${pick(next, AGENTS)}${tag}"; ${tail})`,
      );
    } else if (kind < 0.6) {
      const host = `${tag}.${pick(next, TLDS)}`;
      out.push(
        `alert http $HOME_NET any -> $EXTERNAL_NET any (msg:"BENCH HTTP host ${host}"; flow:established,to_server; http.host; content:"${host}"; endswith; ${tail})`,
      );
    } else if (kind < 0.75) {
      const host = `${tag}.${pick(next, TLDS)}`;
      out.push(
        `alert tls $HOME_NET any -> $EXTERNAL_NET any (msg:"BENCH TLS SNI ${host}"; flow:established,to_server; tls.sni; content:"${host}"; endswith; nocase; ${tail})`,
      );
    } else if (kind < 0.9) {
      const host = `${tag}.${pick(next, TLDS)}`;
      out.push(
        `alert dns $HOME_NET any -> any any (msg:"BENCH DNS query ${host}"; dns.query; content:"${host}"; nocase; endswith; ${tail})`,
      );
    } else {
      const port = pick(next, ['any', '80', '443', '8080', '[1024:]', '4444']);
      const magic = 4 + Math.floor(next() * 6);
      const depth = magic + Math.floor(next() * 60);
      out.push(
        `alert tcp $EXTERNAL_NET ${port} -> $HOME_NET any (msg:"BENCH payload ${tag}"; flow:established,to_client; content:"|${bytes(next, magic)}|"; depth:${depth}; content:"${tag}"; distance:0; ${tail})`,
      );
    }
  }
  return out;
}

/** How the names spread over categories (fractions; the kid profile blocks adult, gambling, dating, malware). */
export const NAME_SPREAD: ReadonlyArray<readonly [string, number]> = [
  ['adult', 0.55],
  ['malware', 0.2],
  ['gambling', 0.12],
  ['dating', 0.05],
  ['games', 0.04],
  ['social', 0.04],
];

/**
 * `count` distinct domain names of 2 to 4 labels, spread over categories by
 * {@link NAME_SPREAD}: category → names.
 * @param seed PRNG seed (default 7).
 */
export function benchNames(count: number, seed = 7): Map<string, string[]> {
  const next = rng(seed);
  const seen = new Set<string>();
  const out = new Map<string, string[]>();
  for (const [category, share] of NAME_SPREAD) {
    const want = category === NAME_SPREAD.at(-1)![0] ? count - seen.size : Math.round(count * share);
    const names: string[] = [];
    while (names.length < want) {
      const base = `${word(next)}${Math.floor(next() * 1000)}.${pick(next, TLDS)}`;
      const r = next();
      const name =
        r < 0.5
          ? base
          : r < 0.85
            ? `${pick(next, SUBS)}.${base}`
            : `${word(next)}.${pick(next, SUBS)}.${base}`;
      if (seen.has(name)) continue;
      seen.add(name);
      names.push(name);
    }
    out.set(category, names);
  }
  return out;
}

/** `count` Tor relay addresses (public IPv4 outside the lab's TEST-NETs), realistic size ~8,000. */
export function benchRelays(count: number, seed = 5): string[] {
  const next = rng(seed);
  const seen = new Set<string>();
  while (seen.size < count) {
    const a = 11 + Math.floor(next() * 115);
    seen.add(`${a}.${Math.floor(next() * 256)}.${Math.floor(next() * 256)}.${1 + Math.floor(next() * 254)}`);
  }
  return [...seen];
}
