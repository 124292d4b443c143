import { Document, LineCounter, parseDocument, type Node } from 'yaml';
import { invalid, type Issue } from '../errors.js';
import type { Policy } from './model.js';
import { checkPolicy } from './validate.js';

/**
 * The whole policy as YAML (config as code). The file is the `Policy` schema of
 * model.ts written in YAML 1.2; JSON is valid YAML, so a JSON export imports too.
 */

/** A problem in a policy file: where in the policy, and where in the file. */
export interface YamlIssue extends Issue {
  /** 1-based line and column in the file, when known. */
  readonly line?: number;
  readonly col?: number;
}

/** Limits for YAML parsing: aliases are expanded, so bound them (billion laughs). */
const MAX_ALIASES = 100;

/**
 * The policy as a YAML document, in the policy's own order.
 * @param header comment lines for the top of the file; default: none.
 */
export function policyToYaml(policy: Policy, header?: string): string {
  const doc = new Document(policy, { version: '1.2' });
  if (header !== undefined)
    doc.commentBefore = header
      .split('\n')
      .map((l) => ` ${l}`)
      .join('\n');
  return doc.toString({ lineWidth: 0 });
}

/**
 * Parse and validate a policy file in full: YAML syntax, schema and semantics.
 * Ports written as numbers (`ports: [80, 443]`) are taken as strings.
 * @throws POLICY_INVALID listing every problem, each with its path and, where the file
 *   has it, its line and column (in the message and in `context.issues`).
 */
export function parsePolicyYaml(text: string): Policy {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, version: '1.2' });
  const syntax: YamlIssue[] = doc.errors.map((e) => {
    const pos = lineCounter.linePos(e.pos[0]);
    return {
      path: '/',
      message: `YAML syntax error at line ${pos.line}, column ${pos.col}: ${e.message.split('\n')[0]}`,
      ...pos,
    };
  });
  if (syntax.length > 0) throw invalid('POLICY_INVALID', 'the policy file is not valid YAML', syntax);

  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: MAX_ALIASES });
  } catch (err) {
    throw invalid('POLICY_INVALID', 'the policy file cannot be read', [
      { path: '/', message: (err as Error).message },
    ]);
  }
  if (value === null || value === undefined) {
    throw invalid('POLICY_INVALID', 'the policy file is empty', [
      { path: '/', message: 'expected a policy: vms, profiles, schedules …' },
    ]);
  }
  portsAsStrings(value);

  const issues = checkPolicy(value);
  if (issues.length > 0) {
    throw invalid(
      'POLICY_INVALID',
      'invalid policy',
      issues.map((i): YamlIssue => {
        const pos = locate(doc, lineCounter, i.path);
        return pos ? { ...i, message: `${i.message} (line ${pos.line}, column ${pos.col})`, ...pos } : i;
      }),
    );
  }
  return value as Policy;
}

/** Where the node at a JSON pointer starts, or its nearest ancestor that exists. */
function locate(doc: Document, lc: LineCounter, pointer: string): { line: number; col: number } | undefined {
  const keys = pointer
    .split('/')
    .slice(1)
    .filter((k) => k !== '')
    .map((k) => k.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((k) => (/^\d+$/.test(k) ? Number(k) : k));
  for (let n = keys.length; n >= 0; n--) {
    const node = (n === 0 ? doc.contents : doc.getIn(keys.slice(0, n), true)) as Node | null | undefined;
    if (node && typeof node === 'object' && 'range' in node && node.range) {
      return lc.linePos(node.range[0]);
    }
  }
  return undefined;
}

function portsAsStrings(value: unknown): void {
  const fix = (rules: unknown): void => {
    if (!Array.isArray(rules)) return;
    for (const r of rules) {
      if (r && typeof r === 'object' && Array.isArray((r as { ports?: unknown }).ports)) {
        const rule = r as { ports: unknown[] };
        rule.ports = rule.ports.map((p) => (typeof p === 'number' && Number.isInteger(p) ? String(p) : p));
      }
    }
  };
  if (!value || typeof value !== 'object') return;
  const p = value as { vms?: unknown; profiles?: unknown };
  for (const list of [p.vms, p.profiles]) {
    if (Array.isArray(list))
      for (const x of list) if (x && typeof x === 'object') fix((x as { rules?: unknown }).rules);
  }
}
