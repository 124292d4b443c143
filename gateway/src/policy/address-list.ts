import { PortcullisError } from '../errors.js';
import { parseCidr } from './net.js';

/** Limits of an address list file. */
export interface AddressListLimits {
  /** Longest line, in bytes. Default 128. */
  readonly maxLineBytes?: number;
  /** Most entries. Default 5,000,000. */
  readonly maxEntries?: number;
}

/**
 * Parse an address list (one IPv4/IPv6 address or CIDR a line, `#` comments, blank
 * lines): the format of rule bundle deny lists. The whole file is checked before
 * anything is returned; the first bad line is named with its number. Pure.
 */
export function parseAddressList(text: string, name: string, limits: AddressListLimits = {}): string[] {
  const maxLine = limits.maxLineBytes ?? 128;
  const maxEntries = limits.maxEntries ?? 5_000_000;
  if (text.includes('\u0000')) throw listError(name, 0, 'contains NUL bytes: it is not a text file');
  const out: string[] = [];
  let lineNo = 0;
  let start = 0;
  while (start <= text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    lineNo++;
    let line = text.slice(start, end);
    start = end + 1;
    if (line.length > maxLine) throw listError(name, lineNo, `line is longer than ${maxLine} characters`);
    const hash = line.indexOf('#');
    if (hash >= 0) line = line.slice(0, hash);
    line = line.trim();
    if (line === '') continue;
    const c = fastCheck(line) ? line : checked(line, name, lineNo);
    out.push(c);
    if (out.length > maxEntries) throw listError(name, lineNo, `more than ${maxEntries} entries`);
    if (end === text.length) break;
  }
  return out;
}

function checked(line: string, name: string, lineNo: number): string {
  const p = parseCidr(line);
  if ('error' in p) throw listError(name, lineNo, p.error);
  return p.text;
}

/** True for a plain dotted quad with an optional /len whose host bits are clear. */
function fastCheck(s: string): boolean {
  const slash = s.indexOf('/');
  const addr = slash < 0 ? s : s.slice(0, slash);
  const parts = addr.split('.');
  if (parts.length !== 4) return false;
  let n = 0;
  for (const p of parts) {
    if (p.length === 0 || p.length > 3 || !/^\d+$/.test(p)) return false;
    const v = Number(p);
    if (v > 255 || (p.length > 1 && p[0] === '0')) return false;
    n = n * 256 + v;
  }
  if (slash < 0) return true;
  const lenText = s.slice(slash + 1);
  if (!/^\d{1,2}$/.test(lenText)) return false;
  const len = Number(lenText);
  if (len > 32) return false;
  return len === 32 || n % 2 ** (32 - len) === 0;
}

function listError(name: string, line: number, what: string): PortcullisError {
  return new PortcullisError(
    'BUNDLE_INVALID',
    `address list ${name}${line > 0 ? `, line ${line}` : ''}: ${what}`,
    {
      context: { list: name, line },
    },
  );
}
