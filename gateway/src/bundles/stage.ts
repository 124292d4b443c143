import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PortcullisError } from '../errors.js';
import { parseListFile } from '../dns/lists.js';
import { parseAddressList } from '../policy/address-list.js';
import { bundleFileKind, parseSafeSearchMap } from '../../../rules/src/format.js';
import { renderSuricataConfig, type SuricataSetup } from '../suricata/config.js';
import { applySidChanges, type RuleSource, type SidChange, type SidReport } from './sids.js';
import { ENFORCED_RULES } from './versions.js';
import { countRules, ruleLoadTimeoutMs } from '../suricata/reload.js';

/**
 * Staging of an unpacked bundle before it may be switched to: every list parses (no bad
 * line tolerated: the vendor's build checks the same), the rules after the admin's SID
 * changes are written to `enforced.rules` in the version folder, and `suricata -T` loads
 * them with the running configuration. Nothing in force changes here.
 */

/** Tests a rules file with Suricata; throws BUNDLE_RULES_INVALID. */
export type RuleTester = (rulesFile: string) => Promise<void>;

/** What staging found. */
export interface StagedBundle {
  readonly rulesFile: string;
  readonly sids: SidReport;
  /** List files checked, with their entries. */
  readonly lists: ReadonlyArray<{ readonly path: string; readonly entries: number }>;
}

async function filesUnder(root: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  const entries = await readdir(join(root, rel), { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    const path = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await filesUnder(root, path)));
    else if (e.isFile()) out.push(path);
  }
  return out.sort();
}

const listError = (path: string, err: unknown): PortcullisError =>
  new PortcullisError('BUNDLE_LISTS_INVALID', `the bundle's ${path} is refused: ${(err as Error).message}`, {
    cause: err,
    context: { file: path },
  });

/**
 * Parse every list of a version folder, strictly.
 * @throws BUNDLE_LISTS_INVALID naming the file and line.
 */
export async function checkLists(dir: string): Promise<StagedBundle['lists']> {
  const out: { path: string; entries: number }[] = [];
  for (const path of await filesUnder(dir)) {
    const kind = bundleFileKind(path);
    const file = join(dir, path);
    try {
      switch (kind) {
        case 'category-list':
        case 'service-list':
        case 'doh-names': {
          const parsed = await parseListFile(await readFile(file), path, {
            maxInvalidLines: 0,
            maxInvalidRatio: 0,
          });
          out.push({ path, entries: parsed.count });
          break;
        }
        case 'bypass-addresses':
          out.push({ path, entries: parseAddressList(await readFile(file, 'utf8'), path).length });
          break;
        case 'safesearch':
          parseSafeSearchMap(JSON.parse(await readFile(file, 'utf8')));
          break;
        default:
          break;
      }
    } catch (err) {
      throw listError(path, err);
    }
  }
  return out;
}

/**
 * Stage a version folder: lists checked, `enforced.rules` written (the bundle's
 * `suricata.rules`, then the extra sources, after the SID changes), then tested.
 * @param test `suricata -T` with the running configuration; absent when the IPS is off.
 */
export async function stageBundle(options: {
  readonly dir: string;
  readonly extraSources?: readonly RuleSource[];
  readonly sids?: readonly SidChange[];
  readonly test?: RuleTester;
}): Promise<StagedBundle> {
  const lists = await checkLists(options.dir);
  const vendor = await readFile(join(options.dir, 'suricata.rules'), 'utf8').catch(() => '');
  const { text, report } = applySidChanges(
    [{ group: 'vendor', text: vendor }, ...(options.extraSources ?? [])],
    options.sids ?? [],
  );
  const rulesFile = join(options.dir, ENFORCED_RULES);
  await writeFile(rulesFile, text);
  await options.test?.(rulesFile);
  return { rulesFile, sids: report, lists };
}

/** Nice value of `suricata -T`: the running Suricata inspects traffic first. */
export const RULE_TEST_NICE = 10;

/**
 * A {@link RuleTester} running `suricata -T` with the service's Suricata setup, the bundle's
 * rules file in place of the first rule file (the installed bundle's) and every other rule
 * file as configured. It runs under `nice` (and `ionice` best-effort, lowest), so that the
 * minutes a big ruleset takes on 2 cores do not slow the inspection of the traffic.
 * @param options.timeoutMs how long `suricata -T` may take, ms. Default by the size of
 *   the rules file: `ruleLoadTimeoutMs` (5 minutes plus 15 ms a rule).
 * @param options.nice run under `nice -n RULE_TEST_NICE` and `ionice -c 2 -n 7`. Default true.
 */
export function suricataRuleTester(
  setup: SuricataSetup,
  options: { readonly binary?: string; readonly timeoutMs?: number; readonly nice?: boolean } = {},
): RuleTester {
  return async (rulesFile) => {
    const timeoutMs = options.timeoutMs ?? ruleLoadTimeoutMs(countRules(await readFile(rulesFile, 'utf8')));
    const work = await mkdtemp(join(setup.logDir, '..', 'suricata-test-'));
    try {
      const config = join(work, 'suricata.yaml');
      const test: SuricataSetup = {
        ...setup,
        configFile: config,
        logDir: work,
        pidFile: join(work, 'suricata.pid'),
        commandSocket: join(work, 'command.socket'),
        eveSocket: join(work, 'eve.socket'),
        ruleFiles: [rulesFile, ...setup.ruleFiles.slice(1)],
      };
      await writeFile(config, renderSuricataConfig(test));
      await new Promise<void>((resolve, reject) => {
        const argv = [options.binary ?? 'suricata', '-T', '-c', config, '-l', work];
        const niced =
          (options.nice ?? true)
            ? ['nice', '-n', String(RULE_TEST_NICE), 'ionice', '-c', '2', '-n', '7', ...argv]
            : argv;
        execFile(
          niced[0]!,
          niced.slice(1),
          { timeout: timeoutMs, maxBuffer: 16 << 20 },
          (err, stdout, stderr) => {
            if (!err) return resolve();
            if (err.killed) {
              reject(
                new PortcullisError(
                  'BUNDLE_RULES_INVALID',
                  `suricata -T did not finish testing the bundle's rules within ${timeoutMs / 1000} s`,
                  { cause: err, context: { rulesFile, timeoutMs } },
                ),
              );
              return;
            }
            const errors = `${stdout}\n${stderr}`
              .split('\n')
              .filter((l) => /^E: /.test(l))
              .slice(0, 10);
            reject(
              new PortcullisError(
                'BUNDLE_RULES_INVALID',
                `suricata -T refused the bundle's rules with the running configuration: ${errors.join(' | ') || err.message}`,
                { cause: err, context: { rulesFile, errors } },
              ),
            );
          },
        );
      });
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  };
}
