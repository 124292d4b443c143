import { describe, expect, it } from 'vitest';
import { LineSplitter } from './lines.js';

function makeSplitter(max?: number): { splitter: LineSplitter; lines: string[]; overlong: number[] } {
  const lines: string[] = [];
  const overlong: number[] = [];
  const splitter = new LineSplitter({ line: (l) => lines.push(l), overlong: (n) => overlong.push(n) }, max);
  return { splitter, lines, overlong };
}

describe('LineSplitter', () => {
  it('splits a chunk into lines and holds the unfinished one', () => {
    const { splitter, lines } = makeSplitter();
    splitter.push(Buffer.from('{"a":1}\n{"b":2}\n{"c"'));
    expect(lines).toEqual(['{"a":1}', '{"b":2}']);
    expect(splitter.pendingBytes).toBe(4);
    splitter.push(Buffer.from(':3}\n'));
    expect(lines).toEqual(['{"a":1}', '{"b":2}', '{"c":3}']);
    expect(splitter.pendingBytes).toBe(0);
  });

  it('joins a line delivered one byte at a time', () => {
    const { splitter, lines } = makeSplitter();
    for (const b of Buffer.from('{"x":"y"}\n{"z":1}\n')) splitter.push(Buffer.from([b]));
    expect(lines).toEqual(['{"x":"y"}', '{"z":1}']);
  });

  it('decodes a UTF-8 character cut between two chunks', () => {
    const { splitter, lines } = makeSplitter();
    const bytes = Buffer.from('{"name":"Zoë €"}\n');
    const cut = bytes.indexOf(0xc3) + 1; // inside ë
    splitter.push(bytes.subarray(0, cut));
    splitter.push(bytes.subarray(cut));
    expect(lines).toEqual(['{"name":"Zoë €"}']);
  });

  it("does not keep a reference to the caller's buffer", () => {
    const { splitter, lines } = makeSplitter();
    const buf = Buffer.from('{"a":');
    splitter.push(buf);
    buf.fill(0x20);
    splitter.push(Buffer.from('1}\n'));
    expect(lines).toEqual(['{"a":1}']);
  });

  it('drops a trailing carriage return and skips empty lines', () => {
    const { splitter, lines } = makeSplitter();
    splitter.push(Buffer.from('{"a":1}\r\n\n\r\n{"b":2}\n'));
    expect(lines).toEqual(['{"a":1}', '{"b":2}']);
  });

  it('drops an overlong line, reports it once, and goes on with the next', () => {
    const { splitter, lines, overlong } = makeSplitter(10);
    splitter.push(Buffer.from('{"ok":1}\n{"too":"long'));
    splitter.push(Buffer.from('........'));
    splitter.push(Buffer.from('....."}\n{"ok":2}\n'));
    expect(lines).toEqual(['{"ok":1}', '{"ok":2}']);
    expect(overlong).toHaveLength(1);
    expect(overlong[0]).toBeGreaterThan(10);
    expect(splitter.pendingBytes).toBe(0);
  });

  it('drops an overlong line that arrives in one chunk', () => {
    const { splitter, lines, overlong } = makeSplitter(4);
    splitter.push(Buffer.from('123456789\nabc\n'));
    expect(lines).toEqual(['abc']);
    expect(overlong).toEqual([9]);
  });

  it('hands back the unfinished line at the end, and resets', () => {
    const { splitter, lines } = makeSplitter();
    splitter.push(Buffer.from('{"a":1}\n{"cut'));
    expect(splitter.end()).toBe('{"cut');
    expect(splitter.end()).toBeUndefined();
    splitter.push(Buffer.from('{"b":2}\n'));
    expect(lines).toEqual(['{"a":1}', '{"b":2}']);
  });
});
