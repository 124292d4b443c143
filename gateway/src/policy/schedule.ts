import type { KernelWindow } from './compile.js';
import type { Schedule, Weekday } from './model.js';

/**
 * Schedule math, pure: local weekly windows in a time zone → the UTC day/second
 * ranges the kernel matches (`meta day`, `meta hour`), and whether a schedule is in
 * force at a given instant. The kernel form holds until the zone's UTC offset next
 * changes (DST); the service recompiles then.
 */

const DAYS: readonly Weekday[] = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const WEEK = 7 * 1440;

const formatters = new Map<string, Intl.DateTimeFormat>();

/** Minutes to add to UTC to get local time in `tz` at `at`. */
export function utcOffsetMinutes(tz: string, at: Date): number {
  let fmt = formatters.get(tz);
  if (!fmt) {
    fmt = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
    });
    formatters.set(tz, fmt);
  }
  const parts = fmt.formatToParts(at);
  const get = (t: string): number => Number(parts.find((p) => p.type === t)!.value);
  const local = Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'));
  const utc = Math.floor(at.getTime() / 60_000) * 60_000;
  return Math.round((local - utc) / 60_000);
}

/** The next instant after `at` when the zone's UTC offset changes, within a year; else undefined. */
export function nextOffsetChange(tz: string, at: Date): Date | undefined {
  const base = utcOffsetMinutes(tz, at);
  const hour = 3_600_000;
  let lo = at.getTime();
  for (let t = lo + hour; t <= at.getTime() + 366 * 24 * hour; t += hour) {
    if (utcOffsetMinutes(tz, new Date(t)) !== base) {
      let hi = t;
      while (hi - lo > 60_000) {
        const mid = lo + Math.floor((hi - lo) / 2);
        if (utcOffsetMinutes(tz, new Date(mid)) === base) lo = mid;
        else hi = mid;
      }
      return new Date(Math.ceil(hi / 60_000) * 60_000);
    }
    lo = t;
  }
  return undefined;
}

function minutes(hhmm: string): number {
  const [h, m] = hhmm.split(':').map(Number);
  return h! * 60 + m!;
}

/** Local minute-of-week intervals [start, end) of a schedule; may run past the week's end. */
function localIntervals(s: Schedule): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const w of s.windows) {
    const start = minutes(w.start);
    let end = minutes(w.end);
    if (end <= start) end += 1440; // crosses midnight
    for (const d of w.days) {
      const day = DAYS.indexOf(d as Weekday);
      out.push([day * 1440 + start, day * 1440 + end]);
    }
  }
  return out;
}

/** Whether the schedule is in force at `at`. */
export function scheduleActive(s: Schedule, at: Date): boolean {
  if (s.enabled === false) return false;
  const local = new Date(at.getTime() + utcOffsetMinutes(s.timezone, at) * 60_000);
  const now = local.getUTCDay() * 1440 + local.getUTCHours() * 60 + local.getUTCMinutes();
  return localIntervals(s).some(([a, b]) => (now >= a && now < b) || (now + WEEK >= a && now + WEEK < b));
}

/**
 * The kernel windows of a schedule with the UTC offset in force at `at`.
 * Returns them with the instant they stop being right (next DST change).
 */
export function kernelWindows(
  s: Schedule,
  at: Date,
): { windows: KernelWindow[]; validUntil: Date | undefined } {
  if (s.enabled === false) return { windows: [], validUntil: undefined };
  const offset = utcOffsetMinutes(s.timezone, at);
  // UTC minute-of-week segments split at day boundaries
  const perDay = new Map<string, Set<number>>();
  for (const [a, b] of localIntervals(s)) {
    let start = a - offset;
    const end = b - offset;
    while (start < end) {
      const norm = ((start % WEEK) + WEEK) % WEEK;
      const day = Math.floor(norm / 1440);
      const dayStart = start - (norm - day * 1440);
      const segEnd = Math.min(end, dayStart + 1440);
      const from = (start - dayStart) * 60;
      const to = (segEnd - dayStart) * 60 - 1;
      const key = `${from}-${to}`;
      if (!perDay.has(key)) perDay.set(key, new Set());
      perDay.get(key)!.add(day);
      start = segEnd;
    }
  }
  const windows: KernelWindow[] = [...perDay.entries()]
    .map(([key, days]) => {
      const [from, to] = key.split('-').map(Number);
      return { days: [...days].sort((x, y) => x - y), from: from!, to: to!, mode: s.mode };
    })
    .sort((x, y) => x.from - y.from || x.days[0]! - y.days[0]!);
  return { windows, validUntil: nextOffsetChange(s.timezone, at) };
}

/** Windows during which some services of a VM are blocked. */
export interface ServiceWindows {
  readonly services: readonly string[];
  readonly windows: readonly KernelWindow[];
}

/**
 * Kernel windows of every VM from all schedules (whole-VM schedules and per-service
 * ones apart), and when to recompute them.
 */
export function windowsByVm(
  schedules: readonly Schedule[],
  at: Date,
): {
  byVm: Map<string, KernelWindow[]>;
  services: Map<string, ServiceWindows[]>;
  validUntil: Date | undefined;
} {
  const byVm = new Map<string, KernelWindow[]>();
  const services = new Map<string, ServiceWindows[]>();
  let validUntil: Date | undefined;
  for (const s of schedules) {
    const k = kernelWindows(s, at);
    if (k.validUntil && (!validUntil || k.validUntil < validUntil)) validUntil = k.validUntil;
    for (const vm of s.vms) {
      if (s.services && s.services.length > 0) {
        services.set(vm, [...(services.get(vm) ?? []), { services: s.services, windows: k.windows }]);
      } else byVm.set(vm, [...(byVm.get(vm) ?? []), ...k.windows]);
    }
  }
  return { byVm, services, validUntil };
}
