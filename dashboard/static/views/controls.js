// The big buttons a VM has on the overview and on its own page.
import { api, currentUser, seg } from '../api.js';
import { announce, clearErrors, field, formError, h, select, uid, when } from '../dom.js';
import { internetWords } from '../words.js';

/** Whether a VM's internet is paused now: until a time still to come, or until resumed. */
export function isPaused(vm) {
  return Boolean(vm.pause) && (!vm.pause.until || Date.parse(vm.pause.until) > Date.now());
}

/** "Internet on / off / paused / only allowed sites" as a coloured label. */
export function internetBadge(internet, vm) {
  const { text, tone } = isPaused(vm) ? { text: 'Internet paused', tone: 'bad' } : internetWords(internet);
  return h('span', { class: `pill ${tone}` }, text);
}

/**
 * Quarantine on or off. Quarantine asks why first (the reason goes to the history);
 * ending it is one press. Not for a parent (an admin's tool): nothing then.
 */
export function quarantineControl(vm, ctx) {
  if (currentUser()?.role === 'parent') return null;
  if (vm.quarantine) {
    const box = h('div', { class: 'control' }, formError());
    const release = h(
      'button',
      { type: 'button', class: 'big secondary', 'aria-label': `End quarantine of ${vm.name}` },
      'End quarantine',
    );
    release.addEventListener('click', async () => {
      release.disabled = true;
      try {
        await api('DELETE', `/vms/${seg(vm.name)}/quarantine`);
        announce(`${vm.name} is out of quarantine.`);
        await ctx.refresh();
      } catch (err) {
        ctx.fail(box, err);
        release.disabled = false;
      }
    });
    box.append(release);
    return box;
  }
  const reason = h('input', { name: 'reason', type: 'text', maxlength: '500', autocomplete: 'off' });
  const form = h(
    'form',
    { class: 'quarantine-form', novalidate: true, hidden: true, 'aria-label': `Quarantine ${vm.name}` },
    formError(),
    field({
      label: 'Why? (kept in the history)',
      hint: 'For example: strange traffic, or a virus warning.',
      path: '/body/reason',
      control: reason,
    }),
    h(
      'div',
      { class: 'actions' },
      h('button', { type: 'submit', class: 'big danger' }, 'Quarantine now'),
      h('button', { type: 'button', class: 'secondary', onclick: () => toggle(false) }, 'Cancel'),
    ),
  );
  const open = h(
    'button',
    {
      type: 'button',
      class: 'big danger',
      'aria-expanded': 'false',
      'aria-label': `Quarantine ${vm.name}`,
      onclick: () => toggle(true),
    },
    'Quarantine',
  );
  function toggle(show) {
    form.hidden = !show;
    open.hidden = show;
    open.setAttribute('aria-expanded', String(show));
    clearErrors(form);
    if (show) reason.focus();
    else open.focus();
  }
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await api('POST', `/vms/${seg(vm.name)}/quarantine`, { reason: reason.value.trim() });
      announce(`${vm.name} is quarantined: it reaches only DNS and the update servers.`);
      await ctx.refresh();
    } catch (err) {
      ctx.fail(form, err);
    }
  });
  return h('div', { class: 'control' }, open, form);
}

const PAUSE_FOR = [
  ['15', '15 minutes'],
  ['30', '30 minutes'],
  ['60', '1 hour'],
  ['120', '2 hours'],
  ['', 'Until I resume it'],
];

/** "Pause internet" now, for a while or until resumed; "Resume internet" while paused. */
export function pauseControl(vm, ctx) {
  const url = `/vms/${seg(vm.name)}/pause`;
  if (isPaused(vm)) {
    const box = h('div', { class: 'control' }, formError());
    const resume = h(
      'button',
      { type: 'button', class: 'big good', 'aria-label': `Resume internet for ${vm.name}` },
      'Resume internet',
    );
    resume.addEventListener('click', async () => {
      resume.disabled = true;
      try {
        await api('DELETE', url);
        announce(`Internet is back on for ${vm.name}.`);
        await ctx.refresh();
      } catch (err) {
        ctx.fail(box, err);
        resume.disabled = false;
      }
    });
    box.append(resume);
    return box;
  }
  const minutes = select('minutes', PAUSE_FOR, '60');
  minutes.id = uid('pause');
  minutes.setAttribute('aria-describedby', `${minutes.id}-error`);
  const form = h(
    'form',
    { class: 'pause-form', novalidate: true, 'aria-label': `Pause internet for ${vm.name}` },
    formError(),
    h(
      'div',
      { class: 'field', 'data-path': '/body/minutes' },
      h('label', { for: minutes.id }, 'Pause for'),
      h(
        'div',
        { class: 'pause-row' },
        minutes,
        h(
          'button',
          { type: 'submit', class: 'big warn', 'aria-label': `Pause internet for ${vm.name}` },
          'Pause internet',
        ),
      ),
      h('p', { class: 'field-error', id: `${minutes.id}-error`, hidden: true }),
    ),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = minutes.value ? { minutes: Number(minutes.value) } : {};
    try {
      await api('POST', url, body);
      announce(`Internet paused for ${vm.name}.`);
      await ctx.refresh();
    } catch (err) {
      ctx.fail(form, err);
    }
  });
  return h('div', { class: 'control' }, form);
}

/** One line about a pause: until when. */
export function pauseNote(vm) {
  if (!isPaused(vm)) return null;
  return h(
    'p',
    { class: 'note bad' },
    h('strong', {}, 'Internet paused'),
    vm.pause.until ? ` until ${when(vm.pause.until)}` : ' until you resume it',
    vm.pause.reason ? `: ${vm.pause.reason}` : '',
  );
}

/** One line about a quarantine: why and since when. */
export function quarantineNote(vm) {
  if (!vm.quarantine) return null;
  return h(
    'p',
    { class: 'note bad' },
    h('strong', {}, 'Quarantined'),
    ` since ${when(vm.quarantine.since)}: ${vm.quarantine.reason}`,
  );
}
