import { existsSync } from 'node:fs';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isPortcullisError } from '../../errors.js';
import type { LineSink } from './ingest.js';
import type { EveParseError } from './parse.js';
import { EveSocketReader } from './socket-reader.js';

/** A sink that records what it gets. */
function makeSink(): LineSink & { lines: string[]; rejected: EveParseError[] } {
  const lines: string[] = [];
  const rejected: EveParseError[] = [];
  return { lines, rejected, pushLine: (l) => void lines.push(l), reject: (e) => void rejected.push(e) };
}

async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
}

function connectTo(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(path, () => resolve(s));
    s.once('error', reject);
  });
}

describe('EveSocketReader', () => {
  let dir: string;
  let path: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'eve-socket-'));
    path = join(dir, 'eve.sock');
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('accepts Suricata as a client and delivers its lines, however they are chunked', async () => {
    const sink = makeSink();
    const reader = new EveSocketReader({ path, sink });
    await reader.start();
    expect((await stat(path)).isSocket()).toBe(true);
    const s = await connectTo(path);
    s.write('{"a":1}\n{"b"');
    await new Promise((r) => setTimeout(r, 20));
    s.write(':2}\n{"c":3}\n');
    await until(() => sink.lines.length === 3);
    expect(sink.lines).toEqual(['{"a":1}', '{"b":2}', '{"c":3}']);
    expect(reader.status()).toMatchObject({ listening: true, connections: 1, accepted: 1 });
    s.end();
    await reader.stop();
    expect(existsSync(path)).toBe(false);
  });

  it('counts a line cut off by a closed connection as truncated, and takes the reconnect', async () => {
    const sink = makeSink();
    const reader = new EveSocketReader({ path, sink });
    await reader.start();
    const first = await connectTo(path);
    first.end('{"a":1}\n{"half":');
    await until(() => sink.rejected.length === 1);
    expect(sink.rejected[0]).toMatchObject({ reason: 'truncated', sample: '{"half":' });
    const second = await connectTo(path);
    second.write('{"b":2}\n');
    await until(() => sink.lines.length === 2);
    expect(reader.status().accepted).toBe(2);
    second.destroy();
    await reader.stop();
  });

  it('rejects an overlong line and keeps the connection', async () => {
    const sink = makeSink();
    const reader = new EveSocketReader({ path, sink, maxLineBytes: 16 });
    await reader.start();
    const s = await connectTo(path);
    s.write(`{"x":"${'y'.repeat(100)}"}\n{"ok":1}\n`);
    await until(() => sink.lines.length === 1);
    expect(sink.rejected.map((e) => e.reason)).toEqual(['too-long']);
    s.destroy();
    await reader.stop();
  });

  it('replaces a stale socket left by a crash', async () => {
    const crashed = new EveSocketReader({ path, sink: makeSink() });
    await crashed.start();
    // simulate a crash: the file stays, nobody listens (a second server on the path takes over)
    const sink = makeSink();
    const reader = new EveSocketReader({ path, sink });
    await reader.start();
    const s = await connectTo(path);
    s.write('{"a":1}\n');
    await until(() => sink.lines.length === 1);
    s.destroy();
    await reader.stop();
    await crashed.stop();
  });

  it('refuses to replace a file that is not a socket', async () => {
    await writeFile(path, 'precious');
    const reader = new EveSocketReader({ path, sink: makeSink() });
    const err = await reader.start().catch((e: unknown) => e);
    expect(isPortcullisError(err, 'SURICATA_SOCKET')).toBe(true);
    expect(existsSync(path)).toBe(true);
  });

  it('can be stopped and started again', async () => {
    const sink = makeSink();
    const reader = new EveSocketReader({ path, sink });
    await reader.start();
    await reader.stop();
    await reader.stop();
    await reader.start();
    const s = await connectTo(path);
    s.write('{"again":1}\n');
    await until(() => sink.lines.length === 1);
    s.destroy();
    await reader.stop();
    expect(reader.status().listening).toBe(false);
  });
});
