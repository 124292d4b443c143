// One VM: what is in force now, its rules (add, delete), quarantine, its schedules.
import { api, seg } from '../api.js';
import { announce, confirmButton, field, formError, h, select, when } from '../dom.js';
import { ACTION_OPTIONS, TARGET_OPTIONS, lookupWords, modeWords, ruleWords, windowWords } from '../words.js';
import { internetBadge, pauseControl, pauseNote, quarantineControl, quarantineNote } from './controls.js';

export async function vmView(ctx) {
  const name = ctx.params[0];
  const [vm, state, rules, schedules, vms, budget, queries] = await Promise.all([
    api('GET', `/vms/${seg(name)}`),
    api('GET', `/vms/${seg(name)}/state`).catch(() => null),
    api('GET', `/vms/${seg(name)}/rules`),
    api('GET', '/schedules'),
    api('GET', '/vms'),
    // 404 NOT_FOUND: the VM's profile has no daily time budget
    api('GET', `/vms/${seg(name)}/budget`).catch(() => null),
    // null where the service runs no DNS filter
    api('GET', `/vms/${seg(name)}/queries?limit=${LOOKUPS}`).catch(() => null),
  ]);
  const mine = schedules.filter((s) => s.vms.includes(vm.name));
  const activeNow = new Map((state?.schedules ?? []).map((s) => [s.name, s.active]));

  return h(
    'div',
    { class: 'view' },
    h('p', { class: 'crumbs' }, h('a', { href: '#/' }, '← All VMs')),
    h('h1', { tabindex: '-1' }, vm.name),
    h(
      'section',
      { class: 'panel', 'aria-labelledby': 'now-heading' },
      h('h2', { id: 'now-heading' }, 'Right now'),
      h(
        'p',
        { class: 'now' },
        state ? internetBadge(state.internet, vm) : 'State unknown',
        state && state.profile !== vm.profile && ` (profile ${state.profile} in force)`,
      ),
      quarantineNote(vm),
      pauseNote(vm),
      h('div', { class: 'card-actions' }, pauseControl(vm, ctx), quarantineControl(vm, ctx)),
    ),
    budget && budgetPanel(vm, budget, ctx),
    queries && lookupsPanel(vm, queries.entries),
    h(
      'section',
      { class: 'panel', 'aria-labelledby': 'rules-heading' },
      h('h2', { id: 'rules-heading' }, 'Rules'),
      h(
        'p',
        { class: 'hint' },
        `Checked from the top: the first rule that matches decides. The rules of the profile ${vm.profile} come after these.`,
      ),
      rules.length === 0
        ? h('p', { class: 'empty' }, 'No rules of its own yet.')
        : h(
            'ol',
            { class: 'rules', 'aria-label': `Rules of ${vm.name}` },
            rules.map((rule) => ruleItem(vm, rule, ctx)),
          ),
      ruleForm(vm, vms, ctx),
    ),
    h(
      'section',
      { class: 'panel', 'aria-labelledby': 'schedules-heading' },
      h('h2', { id: 'schedules-heading' }, 'Schedules'),
      mine.length === 0
        ? h('p', { class: 'empty' }, 'No schedules for this VM.')
        : h(
            'ul',
            { class: 'plain-list' },
            mine.map((s) =>
              h(
                'li',
                {},
                h('strong', {}, s.name),
                `: ${modeWords(s.mode)}, ${s.windows.map(windowWords).join('; ')} (${s.timezone})`,
                s.enabled === false ? ' — turned off' : activeNow.get(s.name) ? ' — on now' : '',
              ),
            ),
          ),
      h('p', {}, h('a', { href: '#/schedules', class: 'button secondary' }, 'Manage schedules')),
    ),
    h(
      'section',
      { class: 'panel', 'aria-labelledby': 'about-heading' },
      h('h2', { id: 'about-heading' }, 'About this VM'),
      h(
        'dl',
        { class: 'facts' },
        h('dt', {}, 'Profile'),
        h('dd', {}, h('a', { href: '#/profiles' }, vm.profile)),
        vm.owner && [h('dt', {}, 'Used by'), h('dd', {}, vm.owner)],
        h('dt', {}, 'Port'),
        h('dd', { class: 'mono' }, vm.port ?? 'any port without a VM (identified by MAC and address)'),
        h('dt', {}, 'MAC address'),
        h('dd', { class: 'mono' }, vm.mac),
        h('dt', {}, 'IPv4 address'),
        h('dd', { class: 'mono' }, vm.ipv4),
        vm.ipv6 && [h('dt', {}, 'IPv6 address'), h('dd', { class: 'mono' }, vm.ipv6)],
        vm.notes && [h('dt', {}, 'Notes'), h('dd', {}, vm.notes)],
      ),
    ),
  );
}

/** Look-ups shown on the VM's page. */
const LOOKUPS = 25;

/** "Recent look-ups": the VM's latest DNS questions, what the filter did and why. */
function lookupsPanel(vm, entries) {
  return h(
    'section',
    { class: 'panel lookups', 'aria-labelledby': 'lookups-heading' },
    h('h2', { id: 'lookups-heading' }, 'Recent look-ups'),
    entries.length === 0
      ? h('p', { class: 'empty' }, `${vm.name} has not looked anything up yet.`)
      : h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            { class: 'audit lookups-table' },
            h('caption', { class: 'hint' }, `The last ${LOOKUPS} names ${vm.name} asked for, newest first.`),
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                h('th', { scope: 'col' }, 'Time'),
                h('th', { scope: 'col' }, 'Site'),
                h('th', { scope: 'col' }, 'What happened'),
              ),
            ),
            h(
              'tbody',
              {},
              entries.map((e) => {
                const w = lookupWords(e);
                return h(
                  'tr',
                  {},
                  h('td', { 'data-label': 'Time' }, clock(e.time)),
                  h(
                    'td',
                    { class: 'mono', 'data-label': 'Site' },
                    e.name,
                    e.type !== 'A' && e.type !== 'AAAA' && h('span', { class: 'rule-meta' }, ` ${e.type}`),
                  ),
                  h('td', { 'data-label': 'What happened' }, h('span', { class: `pill ${w.tone}` }, w.text)),
                );
              }),
            ),
          ),
        ),
  );
}

const GRANTS = [
  [15, '+15 min'],
  [30, '+30 min'],
  [60, '+1 hour'],
];

/** "Time today": the daily time budget of the VM's profile, and buttons to give more. */
function budgetPanel(vm, budget, ctx) {
  const used = Math.floor(budget.usedSeconds / 60);
  const box = h('div', { class: 'budget-actions' }, formError());
  box.append(
    h(
      'div',
      { class: 'actions', role: 'group', 'aria-label': `Give ${vm.name} more time today` },
      GRANTS.map(([minutes, label]) =>
        h(
          'button',
          {
            type: 'button',
            class: 'secondary',
            'aria-label': `Give ${vm.name} ${minutesWords(minutes)} more today`,
            onclick: async (e) => {
              const button = e.currentTarget;
              button.disabled = true;
              try {
                await api('POST', `/vms/${seg(vm.name)}/budget/grant`, { minutes });
                announce(`${vm.name} has ${minutesWords(minutes)} more today.`);
                await ctx.refresh();
              } catch (err) {
                button.disabled = false;
                ctx.fail(box, err);
              }
            },
          },
          label,
        ),
      ),
    ),
  );
  const allowed = budget.dailyMinutes + budget.extraMinutes;
  return h(
    'section',
    { class: 'panel budget', 'aria-labelledby': 'budget-heading' },
    h('h2', { id: 'budget-heading' }, 'Time today'),
    h(
      'p',
      { class: 'now' },
      `${used} of ${budget.dailyMinutes} minutes used`,
      budget.extraMinutes > 0 && ` (+${budget.extraMinutes} extra)`,
    ),
    h('meter', {
      min: '0',
      max: String(Math.max(allowed, 1)),
      value: String(Math.min(used, allowed)),
      'aria-label': 'Time used today',
    }),
    budget.blockedUntil
      ? h('p', { class: 'note bad' }, `Time is up: blocked until ${clock(budget.blockedUntil)}.`)
      : h('p', { class: 'hint' }, `${Math.max(allowed - used, 0)} minutes left today.`),
    box,
  );
}

function minutesWords(minutes) {
  return minutes === 60 ? 'an hour' : `${minutes} minutes`;
}

/** HH:MM in the browser's time zone. */
function clock(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime())
    ? iso
    : d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', hour12: false });
}

function ruleItem(vm, rule, ctx) {
  const box = h('div', { class: 'rule-actions' }, formError());
  box.append(
    confirmButton(
      'Delete',
      'Yes, delete',
      async () => {
        try {
          await api('DELETE', `/vms/${seg(vm.name)}/rules/${seg(rule.id)}`);
          announce('Rule deleted.');
          await ctx.refresh();
        } catch (err) {
          ctx.fail(box, err);
        }
      },
      { class: 'danger', what: `rule: ${ruleWords(rule)}` },
    ),
  );
  return h(
    'li',
    { class: 'rule', 'data-rule': rule.id },
    h(
      'div',
      { class: 'rule-text' },
      h('span', { class: `rule-action ${rule.action}` }, ruleWords(rule)),
      rule.expires && h('span', { class: 'rule-meta' }, `until ${when(rule.expires)}`),
      rule.comment && h('span', { class: 'rule-meta' }, rule.comment),
    ),
    box,
  );
}

/** The "Add a rule" form. Each field names where the API reports its problems. */
function ruleForm(vm, vms, ctx) {
  const action = select('action', ACTION_OPTIONS, 'reject');
  const kind = select('kind', TARGET_OPTIONS, 'domain');
  const targets = {
    domain: field({
      label: 'Website or domain',
      hint: 'Like example.org. Its subdomains count too.',
      path: '/body/to',
      control: h('input', { name: 'domain', type: 'text', autocomplete: 'off' }),
    }),
    cidr: field({
      label: 'Address or network',
      hint: 'An IP address, or a network like 203.0.113.0/24.',
      path: '/body/to',
      control: h('input', { name: 'cidr', type: 'text', autocomplete: 'off' }),
    }),
    vm: field({
      label: 'VM',
      path: '/body/to',
      control: select(
        'vm',
        vms.filter((v) => v.name !== vm.name).map((v) => [v.name, v.name]),
      ),
    }),
    special: field({
      label: 'Which',
      path: '/body/to',
      control: select('special', [
        ['internet', 'The whole internet'],
        ['dns', 'DNS (name look-ups)'],
      ]),
    }),
  };
  const proto = select(
    'proto',
    [
      ['any', 'Any'],
      ['tcp', 'TCP'],
      ['udp', 'UDP'],
      ['icmp', 'ICMP (ping)'],
    ],
    'any',
  );
  const ports = h('input', { name: 'ports', type: 'text', autocomplete: 'off', inputmode: 'numeric' });
  const expires = h('input', { name: 'expires', type: 'datetime-local' });
  const comment = h('input', { name: 'comment', type: 'text', maxlength: '200', autocomplete: 'off' });

  const showTarget = () => {
    for (const [k, el] of Object.entries(targets)) el.hidden = k !== kind.value;
  };
  kind.addEventListener('change', showTarget);
  showTarget();

  const form = h(
    'form',
    { class: 'rule-form', novalidate: true, 'aria-labelledby': 'add-rule-heading' },
    h('h3', { id: 'add-rule-heading' }, 'Add a rule'),
    formError(),
    h(
      'div',
      { class: 'grid' },
      field({ label: 'What to do', path: '/body/action', control: action }),
      field({ label: 'To what', path: '/body/to/kind', control: kind }),
      Object.values(targets),
      field({ label: 'Protocol', path: '/body/proto', control: proto }),
      field({
        label: 'Ports (optional)',
        hint: 'For TCP or UDP: 443, or 8000-8080. Separate with commas.',
        path: '/body/ports',
        control: ports,
      }),
      field({
        label: 'Until (optional)',
        hint: 'Leave empty for a rule that stays.',
        path: '/body/expires',
        control: expires,
      }),
      field({ label: 'Note (optional)', path: '/body/comment', control: comment }),
    ),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'big' }, 'Add rule')),
  );

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const target = targets[kind.value].querySelector('input, select');
    const rule = { action: action.value, to: { [kind.value]: target.value.trim() } };
    if (proto.value !== 'any') rule.proto = proto.value;
    const portList = ports.value.split(/[\s,]+/).filter(Boolean);
    if (portList.length > 0) rule.ports = portList;
    if (expires.value) rule.expires = new Date(expires.value).toISOString();
    if (comment.value.trim()) rule.comment = comment.value.trim();
    try {
      await api('POST', `/vms/${seg(vm.name)}/rules`, rule);
      announce(`Rule added: ${ruleWords(rule)}.`);
      await ctx.refresh();
    } catch (err) {
      ctx.fail(form, err);
    }
  });
  return form;
}
