import { invalid, type Issue } from '../errors.js';

/**
 * SID management as suricata-update does it (enable.conf, disable.conf, modify.conf,
 * drop.conf): changes an admin keeps on top of every rule source, applied at staging to
 * each new bundle, so they survive updates. Pure.
 *
 * A change selects rules by `sid` (`2100498`), by group (`group:<source>`: every rule of one
 * source, `vendor` or an extra source's name) or by regular expression over the rule text
 * (`re:<pattern>`), and then:
 * - `disable`: comments the rule out;
 * - `enable`: uncomments a rule the source ships commented out;
 * - `drop`: turns `alert` into `drop` (the IPS drops what it only reported);
 * - `modify`: replaces `from` (a regular expression) by `to` (`$1`… allowed) in the rule.
 * Changes apply in their order; a rule disabled by an earlier change is still seen by later
 * ones (a later `enable` wins, as in suricata-update where enable comes after disable only
 * when listed so).
 */

/** What a change does. */
export type SidAction = 'enable' | 'disable' | 'drop' | 'modify';

/** One SID change. */
export interface SidChange {
  readonly action: SidAction;
  /** `<sid>`, `group:<source>` or `re:<regular expression>`. */
  readonly match: string;
  /** modify: the regular expression replaced. */
  readonly from?: string;
  /** modify: the replacement. */
  readonly to?: string;
}

/** One rule source's text and its group name. */
export interface RuleSource {
  /** `vendor` for the bundle, else the extra source's name. */
  readonly group: string;
  readonly text: string;
}

/** What applying the changes did, per change (same order). */
export interface SidReport {
  /** Rules each change touched. */
  readonly matched: readonly number[];
  /** Rules in the result that are in force (not commented out). */
  readonly rules: number;
}

const ACTIONS: readonly SidAction[] = ['enable', 'disable', 'drop', 'modify'];
const RULE = /^(alert|drop|pass|reject|rejectsrc|rejectdst|rejectboth)\s/;
const COMMENTED = /^#+\s*((?:alert|drop|pass|reject|rejectsrc|rejectdst|rejectboth)\s.*)$/;
const SID = /(?:^|[;(\s])sid\s*:\s*(\d+)\s*;/;

/**
 * Check changes as they come from the API or the CLI.
 * @throws REQUEST_INVALID naming each bad change.
 */
export function checkSidChanges(value: readonly SidChange[]): readonly SidChange[] {
  const issues: Issue[] = [];
  value.forEach((c, i) => {
    const at = `/${i}`;
    if (!ACTIONS.includes(c.action))
      issues.push({ path: `${at}/action`, message: `must be one of ${ACTIONS.join(', ')}` });
    const m = c.match;
    if (typeof m !== 'string' || m.length === 0 || m.length > 500) {
      issues.push({ path: `${at}/match`, message: 'must be a sid, group:<source> or re:<pattern>' });
    } else if (m.startsWith('re:')) {
      try {
        new RegExp(m.slice(3));
      } catch (err) {
        issues.push({
          path: `${at}/match`,
          message: `is not a regular expression: ${(err as Error).message}`,
        });
      }
    } else if (m.startsWith('group:')) {
      if (!/^group:[a-z0-9][a-z0-9_-]{0,63}$/.test(m))
        issues.push({ path: `${at}/match`, message: 'group names are a-z, 0-9, _ and -' });
    } else if (!/^[1-9]\d{0,9}$/.test(m)) {
      issues.push({ path: `${at}/match`, message: 'must be a sid, group:<source> or re:<pattern>' });
    }
    if (c.action === 'modify') {
      if (typeof c.from !== 'string' || c.from === '')
        issues.push({ path: `${at}/from`, message: 'modify needs from (a regular expression)' });
      else {
        try {
          new RegExp(c.from);
        } catch (err) {
          issues.push({
            path: `${at}/from`,
            message: `is not a regular expression: ${(err as Error).message}`,
          });
        }
      }
      if (typeof c.to !== 'string')
        issues.push({ path: `${at}/to`, message: 'modify needs to (the replacement)' });
    } else if (c.from !== undefined || c.to !== undefined) {
      issues.push({ path: `${at}/from`, message: 'only modify takes from and to' });
    }
  });
  if (issues.length > 0) throw invalid('REQUEST_INVALID', 'SID changes are invalid', issues);
  return value;
}

interface Line {
  /** The rule text without a leading `#`, or the raw line for non-rules. */
  text: string;
  enabled: boolean;
  readonly isRule: boolean;
  readonly group: string;
}

function matcher(match: string): (l: Line) => boolean {
  if (match.startsWith('group:')) {
    const g = match.slice(6);
    return (l) => l.group === g;
  }
  if (match.startsWith('re:')) {
    const re = new RegExp(match.slice(3));
    return (l) => re.test(l.text);
  }
  return (l) => SID.exec(l.text)?.[1] === match;
}

/**
 * Apply `changes` to the sources and return one rules file (each source after a comment
 * naming it).
 */
export function applySidChanges(
  sources: readonly RuleSource[],
  changes: readonly SidChange[],
): { text: string; report: SidReport } {
  const lines: Line[] = [];
  for (const s of sources) {
    lines.push({ text: `# source: ${s.group}`, enabled: false, isRule: false, group: s.group });
    for (const raw of s.text.split('\n')) {
      const t = raw.trim();
      const commented = COMMENTED.exec(t);
      if (RULE.test(t)) lines.push({ text: t, enabled: true, isRule: true, group: s.group });
      else if (commented) lines.push({ text: commented[1]!, enabled: false, isRule: true, group: s.group });
      else lines.push({ text: raw, enabled: false, isRule: false, group: s.group });
    }
  }
  const matched = changes.map((c) => {
    const hit = matcher(c.match);
    let n = 0;
    for (const l of lines) {
      if (!l.isRule || !hit(l)) continue;
      n++;
      switch (c.action) {
        case 'enable':
          l.enabled = true;
          break;
        case 'disable':
          l.enabled = false;
          break;
        case 'drop':
          l.text = l.text.replace(/^alert\s/, 'drop ');
          break;
        case 'modify':
          l.text = l.text.replace(new RegExp(c.from!), c.to!);
          break;
      }
    }
    return n;
  });
  const text = lines.map((l) => (l.isRule && !l.enabled ? `# ${l.text}` : l.text)).join('\n');
  return {
    text: text.endsWith('\n') ? text : `${text}\n`,
    report: { matched, rules: lines.filter((l) => l.isRule && l.enabled).length },
  };
}
