import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { PortcullisError } from '../errors.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import type { Policy } from '../policy/model.js';
import { Serial } from '../util/serial.js';
import {
  parseListNames,
  renderSuricataPolicy,
  type NameLists,
  type NameSet,
  type SuricataPolicyMaterial,
} from './names.js';

/**
 * Reads the DNS lists as names, and keeps the generated rule file and datasets of
 * names.ts in step with the policy: written at start (before Suricata loads its rule
 * files) and again, followed by a rule reload, whenever the policy changes what they say.
 */

/** The names of a list directory laid out as rules/lists/ (`categories/`, `services/`, `doh.txt`). */
export async function readNameLists(
  dir: string,
  dohAddressFiles: readonly string[] = [],
): Promise<NameLists> {
  const read = async (file: string): Promise<string> => {
    try {
      return await readFile(file, 'utf8');
    } catch (err) {
      throw new PortcullisError(
        'DNS_LIST_INVALID',
        `${file}: cannot read the list for Suricata: ${(err as Error).message}`,
        {
          cause: err,
          context: { file },
        },
      );
    }
  };
  const folder = async (sub: string): Promise<Map<string, string[]>> => {
    const out = new Map<string, string[]>();
    let files: string[];
    try {
      files = await readdir(join(dir, sub));
    } catch {
      return out;
    }
    for (const f of files.filter((n) => n.endsWith('.txt')).sort())
      out.set(basename(f, '.txt'), parseListNames(await read(join(dir, sub, f))));
    return out;
  };
  const doh = await read(join(dir, 'doh.txt')).then(parseListNames, () => []);
  const dohAddresses: string[] = [];
  for (const f of dohAddressFiles)
    for (const line of (await read(f)).split('\n')) {
      const a = line.replace(/#.*$/, '').trim();
      if (a !== '') dohAddresses.push(a);
    }
  return { categories: await folder('categories'), services: await folder('services'), doh, dohAddresses };
}

export interface PolicyRulesOptions {
  /** Directory of the rule file and datasets (created). */
  readonly dir: string;
  /** Where the DNS lists come from; called at start and by {@link PolicyRules.reloadLists}. */
  readonly lists: () => Promise<NameLists>;
  /** Reload Suricata's rules after the files changed (a no-op while it is not running: it reads them at start). */
  readonly reload: () => Promise<void>;
  readonly log?: Logger;
  readonly now?: () => number;
}

/** The generated rule file's name in {@link PolicyRulesOptions.dir}. */
export const POLICY_RULES_FILE = 'policy.rules';

/** The rule file for a data directory's Suricata (`<dataDir>/suricata/policy`). */
export const policyRulesFile = (dir: string): string => join(dir, POLICY_RULES_FILE);

export class PolicyRules {
  readonly #o: PolicyRulesOptions;
  readonly #log: Logger;
  readonly #serial = new Serial();
  #lists: NameLists | undefined;
  /** Datasets built from `#lists` (names.ts `cache`); emptied with new lists. */
  readonly #cache = new Map<string, NameSet>();
  #written: string | undefined;

  constructor(options: PolicyRulesOptions) {
    this.#o = options;
    this.#log = options.log ?? silentLogger;
  }

  /** The rule file Suricata must load. */
  get file(): string {
    return policyRulesFile(this.#o.dir);
  }

  /** Read the lists and write the material of `policy`, before Suricata starts. */
  async start(policy: Policy): Promise<void> {
    this.#lists = await this.#o.lists();
    this.#cache.clear();
    await this.#serial.run(() => this.#write(policy));
  }

  /** The policy changed: rewrite (and reload) when the material differs. */
  update(policy: Policy): Promise<void> {
    return this.#serial.run(async () => {
      if (await this.#write(policy)) await this.#o.reload();
    });
  }

  /**
   * The lists changed (a bundle switch): read them again and rewrite; reload Suricata
   * too unless `reload` is false (the caller reloads it itself).
   * @param options.prepared lists from {@link prepareLists}: used as they are (their
   *   datasets are built and written already), instead of reading the lists again.
   */
  async reloadLists(
    policy: Policy,
    options: { readonly reload?: boolean; readonly prepared?: PreparedNames } = {},
  ): Promise<void> {
    const prepared = options.prepared;
    const lists = prepared?.lists ?? (await this.#o.lists());
    await this.#serial.run(async () => {
      this.#lists = lists;
      this.#cache.clear();
      for (const [k, v] of prepared?.cache ?? []) this.#cache.set(k, v);
      if ((await this.#write(policy)) && (options.reload ?? true)) await this.#o.reload();
    });
  }

  /**
   * Build the datasets of new lists for `policy` and write their files, without touching
   * the rule file in force (a rule bundle prepares while the version in force still
   * enforces; datasets are named by their content, so the old ones stay as they are).
   * {@link reloadLists} with the result then only writes the rule file.
   */
  async prepareLists(lists: NameLists, policy: Policy): Promise<PreparedNames> {
    const cache = new Map<string, NameSet>();
    const m = renderSuricataPolicy(policy, lists, {
      dir: this.#o.dir,
      at: new Date((this.#o.now ?? Date.now)()),
      cache,
    });
    await writeDatasets(this.#o.dir, m);
    return { lists, cache };
  }

  /** Write the files when they changed; true when they did. */
  async #write(policy: Policy): Promise<boolean> {
    const lists = this.#lists;
    if (!lists) return false;
    const m = renderSuricataPolicy(policy, lists, {
      dir: this.#o.dir,
      at: new Date((this.#o.now ?? Date.now)()),
      // a policy change costs no pass over a million names (the cache was never handed over)
      cache: this.#cache,
    });
    if (m.rules === this.#written) return false;
    await writeMaterial(this.#o.dir, m);
    this.#written = m.rules;
    this.#log.info(
      { rules: m.ruleCount, datasets: m.datasets.map((d) => ({ name: d.name, entries: d.count })) },
      'Suricata: rules from the policy and the DNS lists written',
    );
    return true;
  }
}

/** Lists read and their datasets built by {@link PolicyRules.prepareLists}. */
export interface PreparedNames {
  readonly lists: NameLists;
  /** The datasets built, as `RenderOptions.cache` keeps them. */
  readonly cache: ReadonlyMap<string, NameSet>;
}

/** Write the datasets that are not there yet (a dataset's name carries its content's hash: one that exists is already right). */
async function writeDatasets(dir: string, m: SuricataPolicyMaterial): Promise<void> {
  await mkdir(dir, { recursive: true });
  const present = new Set(await readdir(dir));
  for (const d of m.datasets) if (!present.has(basename(d.file))) await atomicWrite(d.file, d.content);
}

/** Write the datasets, then the rule file (atomically), and remove datasets no rule loads. */
export async function writeMaterial(dir: string, m: SuricataPolicyMaterial): Promise<void> {
  const keep = new Set([POLICY_RULES_FILE, ...m.datasets.map((d) => basename(d.file))]);
  await writeDatasets(dir, m);
  await atomicWrite(join(dir, POLICY_RULES_FILE), m.rules);
  for (const f of await readdir(dir))
    if (!keep.has(f) && f.endsWith('.lst')) await rm(join(dir, f), { force: true });
}

async function atomicWrite(file: string, content: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, content, { mode: 0o644 });
  await rename(tmp, file);
}
