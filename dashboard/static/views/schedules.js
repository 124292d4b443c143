// Schedules: time windows that switch VMs to "internet off" or "only allowed sites".
import { api, seg } from '../api.js';
import { announce, choices, clearErrors, confirmButton, field, formError, h } from '../dom.js';
import { DAY_OPTIONS, PRESETS, modeWords, windowWords } from '../words.js';

export async function schedulesView(ctx) {
  const [schedules, vms] = await Promise.all([api('GET', '/schedules'), api('GET', '/vms')]);
  const states = await Promise.all(
    vms.map((vm) => api('GET', `/vms/${seg(vm.name)}/state`).catch(() => null)),
  );
  const active = new Set(
    states.flatMap((s) => s?.schedules.filter((x) => x.active).map((x) => x.name) ?? []),
  );

  return h(
    'div',
    { class: 'view' },
    h('h1', { tabindex: '-1' }, 'Schedules'),
    h(
      'section',
      { 'aria-labelledby': 'list-heading' },
      h('h2', { id: 'list-heading' }, 'Your schedules'),
      schedules.length === 0
        ? h('p', { class: 'empty' }, 'No schedules yet. Start from a preset below.')
        : h(
            'ul',
            { class: 'cards' },
            schedules.map((s) => h('li', {}, scheduleCard(s, active.has(s.name), ctx))),
          ),
    ),
    scheduleForm(vms, ctx),
  );
}

function scheduleCard(s, on, ctx) {
  const enabled = s.enabled !== false;
  const box = h('div', { class: 'card-actions' }, formError());
  const toggle = h(
    'button',
    { type: 'button', class: 'big secondary', 'aria-label': `${enabled ? 'Turn off' : 'Turn on'} ${s.name}` },
    enabled ? 'Turn off' : 'Turn on',
  );
  toggle.addEventListener('click', async () => {
    toggle.disabled = true;
    try {
      await api('PUT', `/schedules/${seg(s.name)}`, { ...s, enabled: !enabled });
      announce(`Schedule ${s.name} turned ${enabled ? 'off' : 'on'}.`);
      await ctx.refresh();
    } catch (err) {
      ctx.fail(box, err);
      toggle.disabled = false;
    }
  });
  box.append(
    toggle,
    confirmButton(
      'Delete',
      'Yes, delete',
      async () => {
        try {
          await api('DELETE', `/schedules/${seg(s.name)}`);
          announce(`Schedule ${s.name} deleted.`);
          await ctx.refresh();
        } catch (err) {
          ctx.fail(box, err);
        }
      },
      { class: 'danger', what: `schedule ${s.name}` },
    ),
  );
  const status = !enabled ? ['Turned off', 'neutral'] : on ? ['On now', 'warn'] : ['Not now', 'good'];
  return h(
    'article',
    { class: 'card', 'aria-labelledby': `schedule-${s.name}`, 'data-schedule': s.name },
    h(
      'header',
      { class: 'card-head' },
      h('h3', { id: `schedule-${s.name}` }, s.name),
      h('span', { class: `pill ${status[1]}` }, status[0]),
    ),
    h(
      'dl',
      { class: 'facts' },
      h('dt', {}, 'Does'),
      h('dd', {}, modeWords(s.mode)),
      h('dt', {}, 'When'),
      h('dd', {}, s.windows.map(windowWords).join('; ')),
      h('dt', {}, 'Time zone'),
      h('dd', {}, s.timezone),
      h('dt', {}, 'For'),
      h('dd', {}, s.vms.join(', ')),
    ),
    box,
  );
}

function scheduleForm(vms, ctx) {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  const name = h('input', { name: 'name', type: 'text', autocomplete: 'off' });
  const start = h('input', { name: 'start', type: 'time', value: '21:00' });
  const end = h('input', { name: 'end', type: 'time', value: '07:00' });
  const timezone = h('input', { name: 'timezone', type: 'text', value: zone, autocomplete: 'off' });
  const enabled = h('input', { name: 'enabled', type: 'checkbox', checked: true });
  const vmChoices = choices({
    legend: 'For which VMs',
    path: '/body/vms',
    type: 'checkbox',
    name: 'vms',
    options: vms.map((v) => ({ value: v.name, label: v.name })),
    checked: vms.length === 1 ? [vms[0].name] : [],
  });
  const modeChoices = choices({
    legend: 'While it is on',
    path: '/body/mode',
    type: 'radio',
    name: 'mode',
    options: [
      { value: 'deny', label: 'Internet off' },
      { value: 'allowlist-only', label: 'Only allowed sites' },
    ],
    checked: ['deny'],
  });
  const dayChoices = choices({
    legend: 'Days it starts on',
    path: '/body/windows/0/days',
    type: 'checkbox',
    name: 'days',
    options: DAY_OPTIONS,
    checked: DAY_OPTIONS.map((d) => d.value),
  });

  const form = h(
    'form',
    { class: 'schedule-form', novalidate: true, 'aria-labelledby': 'add-schedule-heading' },
    h('h2', { id: 'add-schedule-heading' }, 'Add a schedule'),
    h(
      'fieldset',
      { class: 'presets' },
      h('legend', {}, 'Start from a preset'),
      h(
        'div',
        { class: 'preset-list' },
        PRESETS.map((p) =>
          h(
            'button',
            { type: 'button', class: 'preset', 'data-preset': p.key, onclick: () => usePreset(p.schedule) },
            h('strong', {}, p.label),
            h('span', {}, p.explain),
          ),
        ),
      ),
    ),
    formError(),
    field({
      label: 'Name',
      hint: 'Lower-case letters, digits and dashes, like bedtime.',
      path: '/body/name',
      control: name,
    }),
    vmChoices,
    modeChoices,
    dayChoices,
    h(
      'div',
      { class: 'grid' },
      field({ label: 'From', path: '/body/windows/0/start', control: start }),
      field({
        label: 'Until',
        hint: 'Earlier than "From" means the next morning.',
        path: '/body/windows/0/end',
        control: end,
      }),
      field({ label: 'Time zone', hint: 'Like Europe/Berlin.', path: '/body/timezone', control: timezone }),
    ),
    h(
      'div',
      { class: 'field', 'data-path': '/body/enabled' },
      h('label', { class: 'choice' }, enabled, h('span', {}, 'Turned on')),
      h('p', { class: 'field-error', hidden: true }),
    ),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'big' }, 'Add schedule')),
  );

  function usePreset(preset) {
    clearErrors(form);
    name.value = preset.name;
    start.value = preset.start;
    end.value = preset.end;
    for (const box of form.querySelectorAll('input[name="days"]'))
      box.checked = preset.days.includes(box.value);
    for (const radio of form.querySelectorAll('input[name="mode"]'))
      radio.checked = radio.value === preset.mode;
    name.focus();
  }

  const picked = (n) => [...form.querySelectorAll(`input[name="${n}"]:checked`)].map((i) => i.value);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const schedule = {
      name: name.value.trim(),
      vms: picked('vms'),
      timezone: timezone.value.trim(),
      windows: [{ days: picked('days'), start: start.value, end: end.value }],
      mode: picked('mode')[0] ?? '',
      enabled: enabled.checked,
    };
    try {
      await api('POST', '/schedules', schedule);
      announce(`Schedule ${schedule.name} added.`);
      await ctx.refresh();
    } catch (err) {
      ctx.fail(form, err);
    }
  });
  return form;
}
