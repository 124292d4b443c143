import { readdir, readFile, stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import { basename, join } from 'node:path';
import { domainToASCII } from 'node:url';
import { PortcullisError } from '../errors.js';
import { fmix, P1, P2, SEED1, SEED2, type HashedList } from './domain-index.js';
import type { ListKind } from './model.js';

/**
 * Domain list files: one domain a line, `#` comments. Also understood: hosts-file
 * lines (`0.0.0.0 name [name…]`) and adblock network rules (`||name^`). A listed
 * domain covers its subdomains. Parsing works on bytes and hashes each entry at once;
 * no per-entry strings are kept.
 */

/** Where a list comes from. */
export interface ListSource {
  /** List name, e.g. `adult` or `youtube`; selects it from `ClientPolicy.categories` / `services`. */
  readonly name: string;
  readonly kind: ListKind;
  /** Files whose entries are merged into this list. */
  readonly files: readonly string[];
}

export interface ListParseOptions {
  /** Longest accepted line, in bytes. A longer line rejects the file. Default 1024. */
  readonly maxLineBytes?: number;
  /**
   * Lines that are neither comments nor entries are tolerated up to
   * `max(maxInvalidLines, maxInvalidRatio × lines)`. Defaults 10 and 0.01.
   */
  readonly maxInvalidLines?: number;
  readonly maxInvalidRatio?: number;
  /** Largest accepted file, in bytes. Default 256 MiB. */
  readonly maxFileBytes?: number;
  /** Yield to the event loop every this many lines. Default 65,536. */
  readonly yieldEvery?: number;
}

/** What parsing one file found. */
export interface ParsedFile {
  readonly file: string;
  /** Pairs of entry hashes, `2 * count` long. */
  readonly hashes: Uint32Array;
  readonly count: number;
  /** Lines in the file. */
  readonly lines: number;
  /** Lines tolerated as invalid (below the threshold), with the first few for the log. */
  readonly invalid: number;
  readonly invalidSamples: readonly { line: number; text: string }[];
}

/** A loaded list, ready for the index. */
export interface LoadedList extends HashedList {
  readonly files: readonly ParsedFile[];
}

const DEFAULTS = {
  maxLineBytes: 1024,
  maxInvalidLines: 10,
  maxInvalidRatio: 0.01,
  maxFileBytes: 256 * 1024 * 1024,
  yieldEvery: 65_536,
};

/** Hosts-file names that are never list entries. */
const HOSTS_SKIP = new Set([
  'localhost',
  'localhost.localdomain',
  'local',
  'broadcasthost',
  'ip6-localhost',
  'ip6-loopback',
  'ip6-localnet',
  'ip6-mcastprefix',
  'ip6-allnodes',
  'ip6-allrouters',
  'ip6-allhosts',
  '0.0.0.0',
]);

const utf8 = new TextDecoder('utf-8', { fatal: true });
const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function invalidFile(
  file: string,
  line: number,
  what: string,
  extra: Record<string, unknown> = {},
): PortcullisError {
  return new PortcullisError(
    'DNS_LIST_INVALID',
    `${file}:${line}: ${what}; the file was rejected and the lists in force were kept. Fix or replace the file and reload.`,
    { context: { file, line, ...extra } },
  );
}

function preview(buf: Buffer, start: number, end: number): string {
  return buf.toString('utf8', start, Math.min(end, start + 80));
}

/** Character classes for entry bytes after lower-casing: 1 = label char, 2 = dot. */
const CLASS = new Uint8Array(256);
for (let c = 0x61; c <= 0x7a; c++) CLASS[c] = 1;
for (let c = 0x30; c <= 0x39; c++) CLASS[c] = 1;
CLASS[0x2d] = 1; // -
CLASS[0x5f] = 1; // _
CLASS[0x2e] = 2; // .

class HashSink {
  hashes = new Uint32Array(1024);
  count = 0;

  /**
   * Validate bytes [start, end) of `src` as a domain (already lower-case ASCII) and add its
   * hash. Returns false when it is not a domain name.
   */
  add(src: Uint8Array, start: number, end: number): boolean {
    // strip "*." / "." prefix and the trailing dot
    if (end - start >= 2 && src[start] === 0x2a && src[start + 1] === 0x2e) start += 2;
    else if (src[start] === 0x2e) start += 1;
    if (end > start && src[end - 1] === 0x2e) end -= 1;
    const len = end - start;
    if (len <= 0 || len > 253) return false;
    let h1 = SEED1;
    let h2 = SEED2;
    let label = 0;
    let numericTld = true;
    let inTld = true;
    for (let i = end - 1; i >= start; i--) {
      const c = src[i] as number;
      const k = CLASS[c];
      if (k === 1) {
        if (++label > 63) return false;
        if (inTld && (c < 0x30 || c > 0x39)) numericTld = false;
      } else if (k === 2) {
        if (label === 0) return false;
        label = 0;
        inTld = false;
      } else return false;
      h1 = Math.imul(h1 ^ c, P1);
      h2 = Math.imul(h2 ^ c, P2);
      h2 ^= h2 >>> 15;
    }
    // an empty label, or an all-digit top label (an address or a counter) is no domain
    if (label === 0 || numericTld) return false;
    if (this.count * 2 + 2 > this.hashes.length) {
      const next = new Uint32Array(this.hashes.length * 2);
      next.set(this.hashes);
      this.hashes = next;
    }
    this.hashes[this.count * 2] = fmix(h1);
    this.hashes[this.count * 2 + 1] = fmix(h2 ^ len);
    this.count++;
    return true;
  }
}

/** Bytes that make a line more than a bare domain: space, tab, #, !, [, |. */
const SPECIAL = new Uint8Array(256);
for (const c of [0x20, 0x09, 0x23, 0x21, 0x5b, 0x7c]) SPECIAL[c] = 1;

const isSpace = (c: number | undefined): boolean => c === 0x20 || c === 0x09;

/**
 * Parse one list file's bytes. Throws `DNS_LIST_INVALID` naming the file and line for:
 * a line longer than `maxLineBytes`, a NUL or other control byte (a binary file),
 * bytes that are not UTF-8, or more invalid lines than the threshold allows.
 */
export async function parseListFile(
  buf: Buffer,
  file: string,
  options: ListParseOptions = {},
): Promise<ParsedFile> {
  const o = { ...DEFAULTS, ...options };
  if (buf.length > o.maxFileBytes) {
    throw invalidFile(file, 1, `file is ${buf.length} bytes, larger than the limit of ${o.maxFileBytes}`);
  }
  const sink = new HashSink();
  const samples: { line: number; text: string }[] = [];
  let invalid = 0;
  let considered = 0;
  let lineNo = 0;
  let pos = 0;
  // UTF-8 byte order mark
  if (buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) pos = 3;
  const lower = Buffer.allocUnsafe(o.maxLineBytes + 1);

  while (pos < buf.length) {
    lineNo++;
    let end = buf.indexOf(0x0a, pos);
    if (end < 0) end = buf.length;
    const next = end + 1;
    if (end > pos && buf[end - 1] === 0x0d) end--;
    if (end - pos > o.maxLineBytes) {
      throw invalidFile(
        file,
        lineNo,
        `line is ${end - pos} bytes long, more than the limit of ${o.maxLineBytes}`,
      );
    }
    // copy lower-cased, and check for control bytes and non-ASCII
    let ascii = true;
    let plain = true;
    let n = 0;
    for (let i = pos; i < end; i++) {
      let c = buf[i] as number;
      if (SPECIAL[c] === 1) plain = false;
      if (c < 0x20 && c !== 0x09) {
        throw invalidFile(
          file,
          lineNo,
          c === 0
            ? 'NUL byte: this looks like a binary file, not a domain list'
            : `control byte 0x${c.toString(16).padStart(2, '0')}: this looks like a binary file, not a domain list`,
          { column: i - pos + 1 },
        );
      }
      if (c >= 0x80) ascii = false;
      else if (c >= 0x41 && c <= 0x5a) c |= 0x20;
      lower[n++] = c;
    }
    let line: Uint8Array = lower;
    let lineEnd = n;
    if (!ascii) {
      let text: string;
      try {
        text = utf8.decode(buf.subarray(pos, end)).toLowerCase();
      } catch {
        throw invalidFile(
          file,
          lineNo,
          'bytes that are not valid UTF-8; list files must be UTF-8 (or ASCII)',
        );
      }
      // internationalised names become punycode; anything else non-ASCII is an invalid line
      const converted = convertUnicodeLine(text);
      line = Buffer.from(converted, 'latin1');
      lineEnd = line.length;
    }

    // most lines are a bare domain: no comment, space, or rule syntax to look at
    const ok =
      plain && ascii && n > 0 ? (sink.add(lower, 0, n) ? GOOD : BAD) : parseLine(line, lineEnd, sink);
    if (ok !== SKIP) {
      considered++;
      if (ok === BAD) {
        invalid++;
        if (samples.length < 5) samples.push({ line: lineNo, text: preview(buf, pos, end) });
      }
    }
    pos = next;
    if (lineNo % o.yieldEvery === 0) await yieldToLoop();
  }

  const allowed = Math.max(o.maxInvalidLines, Math.floor(considered * o.maxInvalidRatio));
  if (invalid > allowed) {
    const first = samples[0] ?? { line: 0, text: '' };
    throw invalidFile(
      file,
      first.line,
      `${invalid} of ${considered} entry lines are not domain names, hosts lines or ||domain^ rules ` +
        `(at most ${allowed} tolerated); first: "${first.text}"`,
      { invalid, considered, samples },
    );
  }
  return { file, hashes: sink.hashes, count: sink.count, lines: lineNo, invalid, invalidSamples: samples };
}

const SKIP = 0;
const GOOD = 1;
const BAD = 2;

/**
 * Convert a non-ASCII (valid UTF-8) line: internationalised names become punycode;
 * other non-ASCII characters become DEL, which no entry accepts (fine inside comments).
 */
function convertUnicodeLine(text: string): string {
  return text
    .replace(/[^\s#|^$]+/gu, (token) => {
      if (/^[ -~]*$/.test(token)) return token;
      const ascii = domainToASCII(token.replace(/^\*\./, '').replace(/\.$/, ''));
      return ascii === '' ? '\u007f' : ascii.toLowerCase();
    })
    .replace(/[^\t -~]/gu, '\u007f');
}

/** Classify and add one lower-cased ASCII line. */
function parseLine(s: Uint8Array, end: number, sink: HashSink): number {
  let a = 0;
  while (a < end && isSpace(s[a])) a++;
  // cut a trailing comment (" #…"), then trailing space
  let b = end;
  for (let i = a; i < end; i++) {
    if (s[i] === 0x23 && (i === a || isSpace(s[i - 1]))) {
      b = i;
      break;
    }
  }
  while (b > a && isSpace(s[b - 1])) b--;
  if (a === b) return SKIP;
  const first = s[a];
  // adblock: "! comment", "[Adblock Plus 2.0]" header
  if (first === 0x21 || first === 0x5b) return SKIP;
  // adblock network rule ||name^ (a "$options" suffix changes the meaning: not supported)
  if (first === 0x7c && s[a + 1] === 0x7c) {
    let e = a + 2;
    while (e < b && s[e] !== 0x5e) e++;
    if (e !== b - 1) return BAD;
    return sink.add(s, a + 2, e) ? GOOD : BAD;
  }
  // split into tokens
  let t = a;
  while (t < b && !isSpace(s[t])) t++;
  if (t === b) return sink.add(s, a, b) ? GOOD : BAD;
  // hosts line: address then names
  const addr = Buffer.from(s.subarray(a, t)).toString('latin1');
  if (isIP(addr) === 0) return BAD;
  let any = false;
  let p = t;
  while (p < b) {
    while (p < b && isSpace(s[p])) p++;
    const q = p;
    while (p < b && !isSpace(s[p])) p++;
    if (q === p) break;
    const name = Buffer.from(s.subarray(q, p)).toString('latin1');
    if (HOSTS_SKIP.has(name)) {
      any = true;
      continue;
    }
    if (!sink.add(s, q, p)) return BAD;
    any = true;
  }
  return any ? GOOD : SKIP;
}

/**
 * Load every file of every source. Throws the first `DNS_LIST_INVALID` met; nothing is
 * returned (and so nothing swapped) unless all files parsed.
 */
export async function loadListSources(
  sources: readonly ListSource[],
  options: ListParseOptions = {},
): Promise<LoadedList[]> {
  const seen = new Set<string>();
  const out: LoadedList[] = [];
  for (const src of sources) {
    const key = `${src.kind}/${src.name}`;
    if (seen.has(key)) {
      throw new PortcullisError(
        'DNS_LIST_INVALID',
        `list ${key} is given twice; merge its files into one source`,
        {
          context: { list: key },
        },
      );
    }
    seen.add(key);
    const files: ParsedFile[] = [];
    for (const file of src.files) {
      let buf: Buffer;
      try {
        const st = await stat(file);
        const limit = options.maxFileBytes ?? DEFAULTS.maxFileBytes;
        if (st.size > limit)
          throw invalidFile(file, 1, `file is ${st.size} bytes, larger than the limit of ${limit}`);
        buf = await readFile(file);
      } catch (err) {
        if (err instanceof PortcullisError) throw err;
        throw new PortcullisError(
          'DNS_LIST_INVALID',
          `${file}: cannot read list ${key}: ${(err as Error).message}`,
          {
            cause: err,
            context: { file, list: key },
          },
        );
      }
      files.push(await parseListFile(buf, file, options));
    }
    out.push(mergeFiles(src, files));
  }
  return out;
}

function mergeFiles(src: ListSource, files: ParsedFile[]): LoadedList {
  if (files.length === 1) {
    const f = files[0] as ParsedFile;
    return { name: src.name, kind: src.kind, hashes: f.hashes, count: f.count, files };
  }
  let count = 0;
  for (const f of files) count += f.count;
  const hashes = new Uint32Array(count * 2);
  let at = 0;
  for (const f of files) {
    hashes.set(f.hashes.subarray(0, f.count * 2), at);
    at += f.count * 2;
  }
  return { name: src.name, kind: src.kind, hashes, count, files };
}

/**
 * The sources of a list directory laid out as shipped in rules/lists/:
 * `categories/<name>.txt`, `services/<name>.txt` and `doh.txt`. Missing parts are skipped.
 */
export async function listSourcesFromDir(dir: string): Promise<ListSource[]> {
  const out: ListSource[] = [];
  for (const [sub, kind] of [
    ['categories', 'category'],
    ['services', 'service'],
  ] as const) {
    let names: string[];
    try {
      names = await readdir(join(dir, sub));
    } catch {
      continue;
    }
    for (const n of names.filter((f) => f.endsWith('.txt')).sort()) {
      out.push({ name: basename(n, '.txt'), kind, files: [join(dir, sub, n)] });
    }
  }
  try {
    await stat(join(dir, 'doh.txt'));
    out.push({ name: 'doh', kind: 'doh', files: [join(dir, 'doh.txt')] });
  } catch {
    // no DoH list shipped
  }
  return out;
}

/**
 * A list from text held in memory (an API upload, a test), parsed like a file.
 * @param origin what to call it in error messages.
 */
export async function listFromText(
  name: string,
  kind: ListKind,
  text: string | Buffer,
  origin = `${kind}/${name}`,
  options: ListParseOptions = {},
): Promise<LoadedList> {
  const parsed = await parseListFile(
    typeof text === 'string' ? Buffer.from(text, 'utf8') : text,
    origin,
    options,
  );
  return mergeFiles({ name, kind, files: [origin] }, [parsed]);
}
