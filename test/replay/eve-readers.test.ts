import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EveFileTailReader } from '../../gateway/src/suricata/eve/file-reader.js';
import { EveIngest } from '../../gateway/src/suricata/eve/ingest.js';
import { EveSocketReader } from '../../gateway/src/suricata/eve/socket-reader.js';
import { suricataArgs } from '../../gateway/src/replay/suricata.js';
import type { EveEvent } from '../../gateway/src/suricata/eve/types.js';

/**
 * The live EVE readers against real Suricata: EVE over a unix stream socket (Suricata
 * connects to the reader), and eve.json followed while Suricata writes it. Both must
 * deliver what Suricata writes to a plain file for the same capture, without a parse
 * error or a shed line.
 */

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const corpus = process.env.PORTCULLIS_CORPUS ?? resolve(repoRoot, 'test', 'fixtures', 'suricata-verify');
const capture = join(corpus, 'base64-decode-5885');

function runSuricata(outdir: string, extra: string[]): Promise<number | null> {
  const args = [
    ...suricataArgs({ pcap: join(capture, 'input.pcap'), rules: join(capture, 'test.rules'), outdir }),
    ...extra,
  ];
  return new Promise((resolvePromise, reject) => {
    const child = spawn('suricata', args, { cwd: capture, stdio: 'ignore' });
    child.on('error', reject);
    child.on('close', (code) => resolvePromise(code));
  });
}

/** event_type → count, stats left out (their content and number depend on timing). */
function byType(types: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of types) if (t !== 'stats') out[t] = (out[t] ?? 0) + 1;
  return out;
}

describe('EVE readers with real Suricata', () => {
  let dir: string;
  let reference: Record<string, number>;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'eve-readers-'));
    if (reference === undefined) {
      const out = await mkdtemp(join(tmpdir(), 'eve-readers-ref-'));
      expect(await runSuricata(out, [])).toBe(0);
      const lines = (await readFile(join(out, 'eve.json'), 'utf8')).split('\n').filter((l) => l.length > 0);
      reference = byType(lines.map((l) => (JSON.parse(l) as { event_type: string }).event_type));
      await rm(out, { recursive: true, force: true });
    }
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('receives EVE over the unix stream socket Suricata connects to', async () => {
    const seen: EveEvent[] = [];
    const ingest = new EveIngest({ handler: (e) => void seen.push(e) });
    const path = join(dir, 'eve.sock');
    const reader = new EveSocketReader({ path, sink: ingest });
    await reader.start();
    try {
      const code = await runSuricata(dir, [
        '--set',
        'outputs.1.eve-log.filetype=unix_stream',
        '--set',
        `outputs.1.eve-log.filename=${path}`,
      ]);
      expect(code).toBe(0);
      const end = Date.now() + 10_000;
      while (reader.status().connections > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      await ingest.idle();
    } finally {
      await reader.stop();
    }
    expect(reader.status().accepted).toBe(1);
    expect(ingest.stats()).toMatchObject({ malformed: 0, shed: 0, handlerErrors: 0 });
    expect(byType(seen.map((e) => e.raw.event_type))).toEqual(reference);
    expect(seen.filter((e) => e.event_type === 'unknown')).toEqual([]);
  });

  it('follows eve.json while Suricata writes it', async () => {
    const seen: EveEvent[] = [];
    const ingest = new EveIngest({ handler: (e) => void seen.push(e) });
    const reader = new EveFileTailReader({ path: join(dir, 'eve.json'), sink: ingest, pollMs: 10 });
    await reader.start();
    try {
      expect(await runSuricata(dir, [])).toBe(0);
      await reader.poll();
      await ingest.idle();
    } finally {
      await reader.stop();
    }
    const written = (await readFile(join(dir, 'eve.json'), 'utf8')).split('\n').filter((l) => l.length > 0);
    expect(ingest.stats()).toMatchObject({ malformed: 0, shed: 0, events: written.length });
    expect(seen.map((e) => JSON.stringify(e.raw))).toEqual(written);
    expect(byType(seen.map((e) => e.raw.event_type))).toEqual(reference);
  });
});
