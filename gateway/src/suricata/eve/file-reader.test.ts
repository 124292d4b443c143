import { appendFile, mkdtemp, rename, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EveFileTailReader } from './file-reader.js';
import type { LineSink } from './ingest.js';
import type { EveParseError } from './parse.js';

function makeSink(): LineSink & { lines: string[]; rejected: EveParseError[] } {
  const lines: string[] = [];
  const rejected: EveParseError[] = [];
  return { lines, rejected, pushLine: (l) => void lines.push(l), reject: (e) => void rejected.push(e) };
}

describe('EveFileTailReader', () => {
  let dir: string;
  let path: string;
  let reader: EveFileTailReader | undefined;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'eve-tail-'));
    path = join(dir, 'eve.json');
  });
  afterEach(async () => {
    await reader?.stop();
    reader = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  /** A reader that only polls when told (a long poll interval). */
  function makeReader(
    sink: LineSink,
    fromStart = false,
    extra: Partial<ConstructorParameters<typeof EveFileTailReader>[0]> = {},
  ): EveFileTailReader {
    reader = new EveFileTailReader({ path, sink, fromStart, pollMs: 60_000, ...extra });
    return reader;
  }

  it('starts at the end of an existing file and follows what is appended', async () => {
    await writeFile(path, '{"old":1}\n');
    const sink = makeSink();
    const r = makeReader(sink);
    await r.start();
    await appendFile(path, '{"new":1}\n{"part');
    await r.poll();
    expect(sink.lines).toEqual(['{"new":1}']);
    await appendFile(path, 'ial":2}\n');
    await r.poll();
    expect(sink.lines).toEqual(['{"new":1}', '{"partial":2}']);
  });

  it('reads an existing file from its start when asked', async () => {
    await writeFile(path, '{"old":1}\n');
    const sink = makeSink();
    await makeReader(sink, true).start();
    expect(sink.lines).toEqual(['{"old":1}']);
  });

  it('waits for a file that does not exist yet, then reads it whole', async () => {
    const sink = makeSink();
    const r = makeReader(sink);
    await r.start();
    expect(r.status().following).toBe(false);
    await writeFile(path, '{"first":1}\n');
    await r.poll();
    expect(sink.lines).toEqual(['{"first":1}']);
  });

  it('finishes the rotated file, then follows the new one from its start', async () => {
    await writeFile(path, '');
    const sink = makeSink();
    const r = makeReader(sink);
    await r.start();
    await appendFile(path, '{"a":1}\n');
    await r.poll();
    // logrotate moves the file; Suricata writes a last line to it, then reopens
    await rename(path, `${path}.1`);
    await appendFile(`${path}.1`, '{"b":2}\n');
    await writeFile(path, '{"c":3}\n');
    await r.poll();
    expect(sink.lines).toEqual(['{"a":1}', '{"b":2}', '{"c":3}']);
    expect(r.status().rotations).toBe(1);
    await appendFile(path, '{"d":4}\n');
    await r.poll();
    expect(sink.lines.at(-1)).toBe('{"d":4}');
  });

  it('keeps reading the old file while the new one is not there yet', async () => {
    await writeFile(path, '');
    const sink = makeSink();
    const r = makeReader(sink);
    await r.start();
    await rename(path, `${path}.1`);
    await appendFile(`${path}.1`, '{"late":1}\n');
    await r.poll();
    expect(sink.lines).toEqual(['{"late":1}']);
    expect(r.status().rotations).toBe(0);
  });

  it('starts over after a truncation and counts the cut line', async () => {
    await writeFile(path, '');
    const sink = makeSink();
    const r = makeReader(sink);
    await r.start();
    await appendFile(path, '{"a":1}\n{"b":2}\n{"cut');
    await r.poll();
    await truncate(path, 0);
    await appendFile(path, '{"c":3}\n');
    await r.poll();
    expect(sink.lines).toEqual(['{"a":1}', '{"b":2}', '{"c":3}']);
    expect(sink.rejected.map((e) => e.reason)).toEqual(['truncated']);
    expect(r.status()).toMatchObject({ truncations: 1, position: 8 });
  });

  it('reads no more than its budget per poll, and the rest on the next', async () => {
    await writeFile(path, '');
    const sink = makeSink();
    const r = makeReader(sink, false, { maxBytesPerPoll: 16, chunkBytes: 8 });
    await r.start();
    await appendFile(path, '{"a":1}\n{"b":2}\n{"c":3}\n{"d":4}\n');
    await r.poll();
    expect(sink.lines).toEqual(['{"a":1}', '{"b":2}']);
    await r.poll();
    expect(sink.lines).toHaveLength(4);
  });

  it('polls by itself until stopped', async () => {
    await writeFile(path, '');
    const sink = makeSink();
    reader = new EveFileTailReader({ path, sink, pollMs: 10 });
    await reader.start();
    await appendFile(path, '{"a":1}\n');
    const end = Date.now() + 2000;
    while (sink.lines.length === 0 && Date.now() < end) await new Promise((res) => setTimeout(res, 10));
    expect(sink.lines).toEqual(['{"a":1}']);
    await reader.stop();
    await appendFile(path, '{"b":2}\n');
    await new Promise((res) => setTimeout(res, 50));
    expect(sink.lines).toHaveLength(1);
    expect(reader.status().following).toBe(false);
  });
});
