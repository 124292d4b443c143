import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { replayPcap, type ReplaySummary } from '../../gateway/src/replay/replay.js';
import { countMatching, type ExpectFile, type Json } from './expect.js';

/**
 * Replays every capture of the suricata-verify corpus through real Suricata and the
 * gateway's EVE pipeline, and holds the result to the corpus's expect.json: every check
 * count, no parse error, and the events written back field for field equal to
 * Suricata's lines. A few captures also go through the `portcullis replay` CLI.
 *
 * Corpus: PORTCULLIS_CORPUS, else test/fixtures/suricata-verify (in the repository).
 * PORTCULLIS_REPLAY_JOBS sets parallel Suricata runs (default 2);
 * PORTCULLIS_CORPUS_FILTER (a regular expression on folder names) narrows the run.
 */

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const corpus = process.env.PORTCULLIS_CORPUS ?? resolve(repoRoot, 'test', 'fixtures', 'suricata-verify');
const jobs = Math.max(1, Number(process.env.PORTCULLIS_REPLAY_JOBS ?? 2));
const filter =
  process.env.PORTCULLIS_CORPUS_FILTER === undefined
    ? undefined
    : new RegExp(process.env.PORTCULLIS_CORPUS_FILTER);
const execFileAsync = promisify(execFile);

interface ManifestEntry {
  readonly name: string;
  readonly folder: string;
  readonly simulate_ips: boolean;
  readonly config: string;
  readonly checks: number;
  readonly alerts: number;
}

function loadManifest(): ManifestEntry[] {
  const file = join(corpus, 'manifest.json');
  if (!existsSync(file))
    throw new Error(
      `replay corpus not found: ${file} is missing; set PORTCULLIS_CORPUS to the suricata-verify corpus folder`,
    );
  const manifest = JSON.parse(readFileSync(file, 'utf8')) as { tests: ManifestEntry[]; test_count: number };
  if (manifest.tests.length !== manifest.test_count)
    throw new Error(
      `manifest lists ${manifest.tests.length} tests but says test_count ${manifest.test_count}`,
    );
  const folders = readdirSync(corpus, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name);
  const listed = new Set(manifest.tests.map((t) => t.folder));
  const unlisted = folders.filter((f) => !listed.has(f));
  if (unlisted.length > 0)
    throw new Error(`corpus folders missing from manifest.json: ${unlisted.join(', ')}`);
  return manifest.tests.filter((t) => filter === undefined || filter.test(t.folder));
}

const tests = loadManifest();

interface Outcome {
  readonly summary?: ReplaySummary;
  readonly error?: string;
  readonly expect: ExpectFile;
  /** Per check: what the events gave. */
  readonly counts: readonly number[];
  readonly suricataLines: number;
  readonly eventLines: number;
  /** Lines of --events that are not field for field Suricata's (index and both lines). */
  readonly mismatches: readonly string[];
  readonly alertEvents: number;
  readonly ms: number;
}

function replayArgs(
  t: ManifestEntry,
  e: ExpectFile,
): { pcap: string; rules: string; simulateIps: boolean; suricataConfig: string | undefined } {
  const dir = join(corpus, t.folder);
  return {
    pcap: join(dir, 'input.pcap'),
    rules: join(dir, 'test.rules'),
    simulateIps: e.simulate_ips,
    suricataConfig: e.config === 'suricata.yaml' ? join(dir, 'suricata.yaml') : undefined,
  };
}

async function runOne(t: ManifestEntry): Promise<Outcome> {
  const started = Date.now();
  const e = JSON.parse(await readFile(join(corpus, t.folder, 'expect.json'), 'utf8')) as ExpectFile;
  const work = await mkdtemp(join(tmpdir(), 'portcullis-corpus-'));
  const outdir = join(work, 'suricata');
  const eventsFile = join(work, 'events.jsonl');
  await mkdir(outdir);
  try {
    const summary = await replayPcap({ ...replayArgs(t, e), eventsFile, outdir });
    const suricata = (await readFile(join(outdir, 'eve.json'), 'utf8'))
      .split('\n')
      .filter((l) => l.length > 0);
    const ours = (await readFile(eventsFile, 'utf8')).split('\n').filter((l) => l.length > 0);
    const mismatches: string[] = [];
    for (let i = 0; i < Math.max(suricata.length, ours.length) && mismatches.length < 3; i++) {
      const s = suricata[i];
      const o = ours[i];
      if (s === undefined || o === undefined || JSON.stringify(JSON.parse(s)) !== o)
        mismatches.push(`line ${i + 1}: suricata ${s?.slice(0, 200)} | events ${o?.slice(0, 200)}`);
    }
    const events = ours.map((l) => JSON.parse(l) as Json);
    return {
      summary,
      expect: e,
      counts: e.checks.map((c) => countMatching(events, c.match)),
      suricataLines: suricata.length,
      eventLines: ours.length,
      mismatches,
      alertEvents: events.filter((ev) => (ev as { event_type?: string }).event_type === 'alert').length,
      ms: Date.now() - started,
    };
  } catch (err) {
    return {
      error: err instanceof Error ? err.message : String(err),
      expect: e,
      counts: [],
      suricataLines: 0,
      eventLines: 0,
      mismatches: [],
      alertEvents: 0,
      ms: Date.now() - started,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Run `fn` over `items`, `n` at a time. */
async function pool<T>(items: readonly T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
}

const results = new Map<string, Outcome>();

describe(`suricata-verify corpus (${tests.length} captures)`, () => {
  beforeAll(async () => {
    const started = Date.now();
    let done = 0;
    let failing = 0;
    await pool(tests, jobs, async (t) => {
      const r = await runOne(t);
      results.set(t.folder, r);
      done += 1;
      const bad =
        r.error !== undefined ||
        r.summary?.parse_errors !== 0 ||
        r.mismatches.length > 0 ||
        r.counts.some((c, i) => c !== r.expect.checks[i]?.count);
      if (bad) failing += 1;
      if (bad || done % 25 === 0 || done === tests.length) {
        const secs = ((Date.now() - started) / 1000).toFixed(1);
        process.stderr.write(
          `[corpus] ${done}/${tests.length} in ${secs}s, ${failing} failing${bad ? ` (latest: ${t.folder}${r.error ? `: ${r.error}` : ''})` : ''}\n`,
        );
      }
    });
    const total = tests.reduce((n, t) => n + (results.get(t.folder)?.eventLines ?? 0), 0);
    process.stderr.write(
      `[corpus] ${tests.length} captures, ${total} events, ${((Date.now() - started) / 1000).toFixed(1)}s with ${jobs} jobs\n`,
    );
  }, 30 * 60_000);

  it.each(tests)('$folder matches expect.json', (t) => {
    const r = results.get(t.folder);
    expect(r, 'replay did not run').toBeDefined();
    const o = r as Outcome;
    expect(o.error).toBeUndefined();
    const summary = o.summary as ReplaySummary;
    expect(summary.parse_errors).toBe(0);
    expect(o.mismatches).toEqual([]);
    expect(o.eventLines).toBe(o.suricataLines);
    expect(Object.values(summary.events).reduce((a, b) => a + b, 0)).toBe(o.suricataLines);
    expect(summary.alerts.total).toBe(o.alertEvents);
    expect(summary.recorded).toBe(o.alertEvents);
    const wrong = o.expect.checks
      .map((c, i) => ({ match: c.match, expected: c.count, got: o.counts[i] }))
      .filter((c) => c.got !== c.expected)
      .map((c) => `${JSON.stringify(c.match)}: expected ${c.expected}, got ${c.got}`);
    expect(wrong).toEqual([]);
  });

  describe('through the portcullis CLI', () => {
    const cli = join(repoRoot, 'gateway', 'bin', 'portcullis');
    const sample = ['alert-testmyids-midstream3', 'ips-state-1', 'pgsql__pgsql-7000-ids'].filter((f) =>
      tests.some((t) => t.folder === f),
    );

    async function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
      try {
        const { stdout, stderr } = await execFileAsync(cli, args, {
          maxBuffer: 64 * 1024 * 1024,
          env: { ...process.env, PORTCULLIS_LOG_LEVEL: 'warn' },
        });
        return { code: 0, stdout, stderr };
      } catch (err) {
        const e = err as { code?: number; stdout?: string; stderr?: string };
        return {
          code: typeof e.code === 'number' ? e.code : -1,
          stdout: e.stdout ?? '',
          stderr: e.stderr ?? '',
        };
      }
    }

    function cliArgs(folder: string): string[] {
      const t = tests.find((x) => x.folder === folder) as ManifestEntry;
      const a = replayArgs(t, (results.get(folder) as Outcome).expect);
      return [
        'replay',
        a.pcap,
        '--rules',
        a.rules,
        ...(a.simulateIps ? ['--simulate-ips'] : []),
        ...(a.suricataConfig ? ['--suricata-config', a.suricataConfig] : []),
      ];
    }

    it.each(sample)('prints the same summary as the replay function for %s', async (folder) => {
      const { code, stdout, stderr } = await runCli(cliArgs(folder));
      expect(stderr).not.toMatch(/EVE line rejected/);
      expect(code).toBe(0);
      const lines = stdout.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(JSON.parse(lines[0] as string)).toEqual(results.get(folder)?.summary);
    });

    it.runIf(sample.includes('alert-testmyids-midstream3'))(
      'lists the blocks a profile would make',
      async () => {
        const { code, stdout } = await runCli([...cliArgs('alert-testmyids-midstream3'), '--profile', 'kid']);
        expect(code).toBe(0);
        const summary = JSON.parse(stdout) as ReplaySummary;
        expect(summary.actions).toContainEqual(
          expect.objectContaining({
            kind: 'block',
            vm: 'replay',
            remote: '82.165.177.154',
            seconds: 86_400,
            reassert: false,
          }),
        );
      },
    );

    it.runIf(sample.length > 0)("exits non-zero with Suricata's error when Suricata fails", async () => {
      const args = cliArgs(sample[0] as string).filter((a) => a !== '--simulate-ips');
      const rules = args[args.indexOf('--rules') + 1] as string;
      const { code, stdout, stderr } = await runCli([...args.slice(0, 4), '--suricata-config', rules]);
      expect(code).toBe(1);
      expect(stdout).toBe('');
      expect(stderr).toMatch(/SURICATA_FAILED: suricata exited with code 1: .*configuration/i);
    });
  });
});
