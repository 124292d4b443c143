// Policy in plain words.

const INTERNET = {
  open: { text: 'Internet on', tone: 'good' },
  deny: { text: 'Internet off', tone: 'bad' },
  'allowlist-only': { text: 'Only allowed sites', tone: 'warn' },
};

/** How a VM's internet access reads, with a tone for its colour. */
export function internetWords(internet) {
  return INTERNET[internet] ?? { text: internet, tone: 'neutral' };
}

/** What a schedule does while it is on. */
export function modeWords(mode) {
  return mode === 'deny' ? 'Internet off' : mode === 'allowlist-only' ? 'Only allowed sites' : mode;
}

const ACTIONS = { accept: 'Allow', reject: 'Block', drop: 'Block silently' };

export const ACTION_OPTIONS = [
  ['accept', 'Allow'],
  ['reject', 'Block'],
  ['drop', 'Block silently (no answer)'],
];

export const TARGET_OPTIONS = [
  ['domain', 'A website or domain'],
  ['cidr', 'An address or network'],
  ['vm', 'Another VM'],
  ['special', 'DNS or the whole internet'],
];

/** A rule as a sentence: "Block TCP ports 80, 443 to 203.0.113.0/24, until 1 Jan 2030". */
export function ruleWords(rule) {
  const to = rule.to;
  const target =
    'cidr' in to
      ? `address ${to.cidr}`
      : 'domain' in to
        ? `website ${to.domain}`
        : 'vm' in to
          ? `VM ${to.vm}`
          : to.special === 'dns'
            ? 'DNS'
            : 'the whole internet';
  const proto = rule.proto && rule.proto !== 'any' ? rule.proto.toUpperCase() : '';
  const ports = rule.ports?.length ? `port${rule.ports.length > 1 ? 's' : ''} ${rule.ports.join(', ')}` : '';
  const what = [proto, ports].filter(Boolean).join(' ');
  return `${ACTIONS[rule.action] ?? rule.action} ${what ? `${what} to ` : ''}${target}`;
}

const DAY_NAMES = { mon: 'Mon', tue: 'Tue', wed: 'Wed', thu: 'Thu', fri: 'Fri', sat: 'Sat', sun: 'Sun' };
export const DAYS = Object.keys(DAY_NAMES);

/** "Mon–Fri", "Every day", "Weekends", or "Mon, Wed". */
export function daysWords(days) {
  const set = new Set(days);
  if (set.size === 7) return 'Every day';
  if (set.size === 5 && DAYS.slice(0, 5).every((d) => set.has(d))) return 'Mon–Fri';
  if (set.size === 2 && set.has('sat') && set.has('sun')) return 'Weekends';
  return DAYS.filter((d) => set.has(d))
    .map((d) => DAY_NAMES[d])
    .join(', ');
}

/** A schedule window: "Mon–Fri 08:00–15:00". */
export function windowWords(w) {
  return `${daysWords(w.days)} ${w.start}–${w.end}`;
}

export const DAY_OPTIONS = DAYS.map((d) => ({ value: d, label: DAY_NAMES[d] }));

/** Ready-made schedules a parent starts from. */
export const PRESETS = [
  {
    key: 'bedtime',
    label: 'Bedtime',
    explain: 'Every night 21:00–07:00, internet off',
    schedule: { name: 'bedtime', mode: 'deny', days: DAYS, start: '21:00', end: '07:00' },
  },
  {
    key: 'school',
    label: 'School hours',
    explain: 'Mon–Fri 08:00–15:00, only allowed sites',
    schedule: {
      name: 'school-hours',
      mode: 'allowlist-only',
      days: DAYS.slice(0, 5),
      start: '08:00',
      end: '15:00',
    },
  },
  {
    key: 'homework',
    label: 'Homework',
    explain: 'Mon–Fri 16:00–18:00, only allowed sites',
    schedule: {
      name: 'homework',
      mode: 'allowlist-only',
      days: DAYS.slice(0, 5),
      start: '16:00',
      end: '18:00',
    },
  },
];

const AUDIT_ACTIONS = {
  'vm.add': 'VM added',
  'vm.update': 'VM changed',
  'vm.remove': 'VM removed',
  'vm.quarantine': 'Quarantined',
  'vm.release': 'Quarantine ended',
  'vm.pause': 'Internet paused',
  'vm.resume': 'Internet resumed',
  'rule.add': 'Rule added',
  'rule.remove': 'Rule removed',
  'rule.expire': 'Rule expired',
  'profile.add': 'Profile added',
  'profile.update': 'Profile changed',
  'profile.remove': 'Profile removed',
  'schedule.add': 'Schedule added',
  'schedule.update': 'Schedule changed',
  'schedule.remove': 'Schedule removed',
  'settings.update': 'Settings changed',
  'policy.import': 'Whole policy imported',
  'policy.replace': 'Whole policy replaced',
  'policy.load': 'Policy loaded',
  'bundle.record': 'Rule update installed',
  'bundle.active': 'Rule update in force',
  'bundle.failed': 'Rule update refused',
  'bundle.rolled-back': 'Rule update rolled back',
  'bundle.rejected': 'Rule update refused',
  'bundle.settings': 'Rule changes (SIDs, sources) set',
  'access-request.create': 'Access asked for',
  'access-request.approve': 'Access approved',
  'access-request.deny': 'Access denied',
};

/** An audit action in words, or as recorded when unknown. */
export function auditWords(action) {
  return AUDIT_ACTIONS[action] ?? action;
}

/** Who made a change: "dashboard", "alice (command line)", "the API". */
export function actorWords(actor) {
  if (actor === 'api') return 'the API';
  if (actor.startsWith('api:')) return actor.slice(4);
  if (actor.startsWith('cli:')) return `${actor.slice(4)} (command line)`;
  if (actor.startsWith('user:')) return actor.slice(5);
  if (actor.startsWith('token:')) return `${actor.slice(6)} (API token)`;
  if (actor === 'config-token') return 'the configured API token';
  if (actor.startsWith('guest:')) return `VM ${actor.slice(6)}`;
  return actor;
}

const BYPASS = {
  canary: 'a way around the filter (Firefox DoH canary)',
  'private-relay': 'a way around the filter (Private Relay)',
  ddr: 'a way around the filter (encrypted DNS discovery)',
  doh: 'encrypted DNS (DNS over HTTPS)',
};

/** What happened to one look-up in the query log, with a tone for its colour. */
export function lookupWords(entry) {
  const r = entry.reason;
  const why = !r
    ? ''
    : r.kind === 'category'
      ? `"${r.list}" category`
      : r.kind === 'service'
        ? r.list
        : r.kind === 'custom'
          ? 'blocked by a parent'
          : r.kind === 'allowlist'
            ? 'not on the allowed list'
            : r.kind === 'paused'
              ? 'internet off'
              : r.kind === 'safesearch'
                ? 'SafeSearch'
                : (BYPASS[r.kind] ?? r.kind);
  switch (entry.action) {
    case 'allow':
      return { text: 'Allowed', tone: 'good' };
    case 'rewrite':
      return { text: 'Allowed with SafeSearch', tone: 'good' };
    case 'block':
    case 'nxdomain':
    case 'nodata':
      if (r) return { text: `Blocked: ${why}`, tone: 'bad' };
      return { text: entry.action === 'nxdomain' ? 'No such name' : 'No answer', tone: 'neutral' };
    default:
      return { text: `Failed (${entry.action})`, tone: 'warn' };
  }
}
