// Small DOM helpers. Text always goes in as text nodes, never as HTML.

/**
 * Build an element. `attrs`: `class`, `on<event>` handlers, boolean attributes
 * (true sets, false/undefined leaves out) and plain attributes. Children: nodes,
 * strings, numbers, arrays of them; null, undefined and false are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'value' && 'value' in el) el.value = value;
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof window.Node ? child : String(child));
  }
}

let ids = 0;
/** A unique element id with a readable prefix. */
export function uid(prefix) {
  ids += 1;
  return `${prefix}-${ids}`;
}

/**
 * A labelled form field. `path` is where the API reports problems with it
 * (`/body/to`); the error message appears under the field.
 */
export function field({ label, hint, path, control }) {
  const id = control.id || uid('f');
  control.id = id;
  const errorId = `${id}-error`;
  const hintId = hint ? `${id}-hint` : undefined;
  control.setAttribute('aria-describedby', [hintId, errorId].filter(Boolean).join(' '));
  return h(
    'div',
    { class: 'field', 'data-path': path },
    h('label', { for: id }, label),
    hint && h('p', { class: 'hint', id: hintId }, hint),
    control,
    h('p', { class: 'field-error', id: errorId, hidden: true }),
  );
}

/** A group of radio buttons or check boxes with a legend, reporting problems like a field. */
export function choices({ legend, path, type, name, options, checked = [] }) {
  const errorId = uid('g-error');
  return h(
    'fieldset',
    { class: 'field choices', 'data-path': path, 'aria-describedby': errorId },
    h('legend', {}, legend),
    h(
      'div',
      { class: 'choice-list' },
      options.map(({ value, label }) =>
        h(
          'label',
          { class: 'choice' },
          h('input', { type, name, value, checked: checked.includes(value) }),
          h('span', {}, label),
        ),
      ),
    ),
    h('p', { class: 'field-error', id: errorId, hidden: true }),
  );
}

/** A select element from `[value, label]` pairs. */
export function select(name, options, selected) {
  return h(
    'select',
    { name },
    options.map(([value, label]) => h('option', { value, selected: value === selected }, label)),
  );
}

/** The place for problems that belong to no one field, at the top of a form. */
export function formError() {
  return h('p', { class: 'form-error', role: 'alert', hidden: true });
}

/** Removes the problems a form shows. */
export function clearErrors(form) {
  for (const el of form.querySelectorAll('.field-error, .form-error')) {
    el.textContent = '';
    el.hidden = true;
  }
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
}

/**
 * Shows an API error in a form: each problem next to the field whose `data-path` is
 * the longest prefix of the problem's path, the rest at the top of the form. The
 * first field at fault gets the focus.
 */
export function showErrors(form, error) {
  clearErrors(form);
  const problems = error.problems();
  const fields = [...form.querySelectorAll('[data-path]')];
  let first;
  for (const problem of problems) {
    const target = fieldFor(fields, problem.path);
    const box = target ? target.querySelector(':scope > .field-error') : form.querySelector('.form-error');
    if (!box) continue;
    box.textContent = box.textContent ? `${box.textContent} ${problem.message}` : problem.message;
    box.hidden = false;
    if (target) {
      const control = target.querySelector('input, select, textarea');
      control?.setAttribute('aria-invalid', 'true');
      first ??= control;
    }
  }
  if (first) first.focus();
  else form.querySelector('.form-error:not([hidden])')?.focus?.();
}

function fieldFor(fields, path) {
  if (!path) return undefined;
  let best;
  for (const f of fields) {
    if (f.closest('[hidden]')) continue;
    const p = f.dataset.path;
    if ((path === p || path.startsWith(`${p}/`)) && (!best || p.length > best.dataset.path.length)) best = f;
  }
  return best;
}

let statusTimer;
/** A short message in the page's live region ("Rule added"). */
export function announce(message, kind = 'ok') {
  const status = document.getElementById('status');
  status.textContent = message;
  status.className = `status ${kind}`;
  window.clearTimeout(statusTimer);
  statusTimer = window.setTimeout(() => {
    status.textContent = '';
    status.className = 'status';
  }, 6000);
}

/**
 * A button that asks once more before it acts: the first press turns it into
 * "Yes, …" for a few seconds. `what` names the thing for screen readers
 * ("rule: Block website x.example" makes "Delete rule: Block website x.example").
 */
export function confirmButton(label, confirmLabel, action, { what, ...attrs } = {}) {
  let armed = false;
  let timer;
  const button = h('button', { type: 'button', ...attrs });
  const show = (text) => {
    button.textContent = text;
    if (what) button.setAttribute('aria-label', `${text} ${what}`);
  };
  show(label);
  button.addEventListener('click', async () => {
    if (!armed) {
      armed = true;
      show(confirmLabel);
      button.classList.add('armed');
      timer = window.setTimeout(() => {
        armed = false;
        show(label);
        button.classList.remove('armed');
      }, 5000);
      return;
    }
    window.clearTimeout(timer);
    button.disabled = true;
    try {
      await action();
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

/** A date and time the way people read it, in the browser's time zone. */
export function when(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime())
    ? iso
    : d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}
