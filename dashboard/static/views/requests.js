// Access requests: a VM asked, from the block page, to reach a blocked site.
import { api } from '../api.js';
import { announce, formError, h, select, when } from '../dom.js';

const DURATIONS = [
  ['15', '15 minutes'],
  ['30', '30 minutes'],
  ['60', '1 hour'],
  ['120', '2 hours'],
  ['240', '4 hours'],
  ['1440', '1 day'],
];

export async function requestsView(ctx) {
  const all = await api('GET', '/access-requests?limit=100');
  const pending = all.filter((r) => r.status === 'pending');
  const decided = all.filter((r) => r.status !== 'pending').slice(0, 20);
  return h(
    'div',
    { class: 'view' },
    h('h1', { tabindex: '-1' }, 'Access requests'),
    h(
      'section',
      { 'aria-labelledby': 'pending-heading' },
      h('h2', { id: 'pending-heading' }, 'Waiting for you'),
      pending.length === 0
        ? h(
            'p',
            { class: 'empty' },
            'Nothing is waiting. When a blocked site is asked for, it shows up here.',
          )
        : h(
            'ul',
            { class: 'cards' },
            pending.map((r) => h('li', {}, requestCard(r, ctx))),
          ),
    ),
    decided.length > 0 &&
      h(
        'section',
        { 'aria-labelledby': 'decided-heading' },
        h('h2', { id: 'decided-heading' }, 'Answered lately'),
        h(
          'ul',
          { class: 'plain-list' },
          decided.map((r) =>
            h(
              'li',
              { 'data-request': r.id },
              h('strong', {}, r.domain),
              ` for ${r.vm}: `,
              r.status === 'approved'
                ? h(
                    'span',
                    { class: 'pill good' },
                    r.until ? `approved until ${when(r.until)}` : 'approved for good',
                  )
                : h('span', { class: 'pill bad' }, 'denied'),
              r.decidedAt && ` (${when(r.decidedAt)})`,
            ),
          ),
        ),
      ),
  );
}

function requestCard(r, ctx) {
  const minutes = select(`minutes-${r.id}`, DURATIONS, '60');
  minutes.id = `minutes-${r.id}`;
  const form = h(
    'form',
    { class: 'request-form', novalidate: true, 'aria-label': `Answer ${r.vm}'s request for ${r.domain}` },
    formError(),
    h(
      'div',
      { class: 'approve-row' },
      h('label', { for: minutes.id }, 'Allow for'),
      minutes,
      h(
        'button',
        { type: 'submit', class: 'big good', 'aria-label': `Approve ${r.domain} for ${r.vm}` },
        'Approve',
      ),
    ),
    h(
      'div',
      { class: 'actions' },
      h(
        'button',
        {
          type: 'button',
          class: 'big secondary',
          'data-answer': 'always',
          'aria-label': `Always allow ${r.domain} for ${r.vm}`,
        },
        'Always allow',
      ),
      h(
        'button',
        {
          type: 'button',
          class: 'big danger',
          'data-answer': 'deny',
          'aria-label': `Deny ${r.domain} for ${r.vm}`,
        },
        'Deny',
      ),
    ),
  );
  const answer = async (path, body, done) => {
    for (const b of form.querySelectorAll('button')) b.disabled = true;
    try {
      await api('POST', `/access-requests/${r.id}/${path}`, body);
      announce(done);
      await ctx.refresh();
    } catch (err) {
      ctx.fail(form, err);
      for (const b of form.querySelectorAll('button')) b.disabled = false;
    }
  };
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const label = minutes.selectedOptions[0]?.textContent ?? '';
    void answer(
      'approve',
      { minutes: Number(minutes.value) },
      `${r.domain} allowed for ${r.vm} for ${label}.`,
    );
  });
  form.querySelector('[data-answer="always"]').addEventListener('click', () => {
    void answer('approve', { always: true }, `${r.domain} allowed for ${r.vm} for good.`);
  });
  form.querySelector('[data-answer="deny"]').addEventListener('click', () => {
    void answer('deny', {}, `${r.domain} stays blocked for ${r.vm}.`);
  });

  return h(
    'article',
    { class: 'card', 'data-request': r.id },
    h('h3', {}, h('span', { class: 'who' }, r.vm), ' asks for ', h('span', { class: 'what' }, r.domain)),
    r.url && h('p', { class: 'mono small' }, r.url),
    r.reason && h('p', {}, `“${r.reason}”`),
    h('p', { class: 'hint' }, `Asked ${when(r.createdAt)}`),
    form,
  );
}
