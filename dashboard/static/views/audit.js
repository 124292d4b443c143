// History: the audit log, newest first, a page at a time.
import { api } from '../api.js';
import { h, when } from '../dom.js';
import { actorWords, auditWords } from '../words.js';
import { backupSection } from './backup.js';

const PAGE = 25;

export async function auditView(ctx) {
  const before = ctx.query.get('before');
  const query = new URLSearchParams({ limit: String(PAGE) });
  if (before) query.set('before', before);
  const page = await api('GET', `/audit?${query}`);
  return h(
    'div',
    { class: 'view' },
    h('h1', { tabindex: '-1' }, 'History'),
    h('p', { class: 'hint' }, 'Every change to the policy: who made it, when, and why.'),
    page.items.length === 0
      ? h('p', { class: 'empty' }, 'Nothing recorded here.')
      : h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            { class: 'audit' },
            h('caption', { class: 'visually-hidden' }, before ? 'Older changes' : 'Latest changes'),
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                ['When', 'Who', 'What', 'Which', 'Why', 'Details'].map((c) => h('th', { scope: 'col' }, c)),
              ),
            ),
            h('tbody', {}, page.items.map(row)),
          ),
        ),
    h(
      'nav',
      { class: 'pager', 'aria-label': 'History pages' },
      before && h('a', { href: '#/audit', class: 'button secondary' }, 'Newest'),
      page.nextBefore &&
        h('a', { href: `#/audit?before=${page.nextBefore}`, class: 'button secondary' }, 'Older'),
    ),
    backupSection(),
  );
}

function row(r) {
  const details = [
    r.before !== undefined && ['Before', r.before],
    r.after !== undefined && ['After', r.after],
  ].filter(Boolean);
  return h(
    'tr',
    { 'data-audit': r.id },
    h('td', { 'data-label': 'When' }, when(r.at)),
    h('td', { 'data-label': 'Who' }, actorWords(r.actor)),
    h('td', { 'data-label': 'What' }, auditWords(r.action)),
    h('td', { class: 'mono', 'data-label': 'Which' }, r.target),
    h('td', { 'data-label': 'Why' }, r.reason ?? ''),
    h(
      'td',
      {},
      details.length > 0 &&
        h(
          'details',
          {},
          h('summary', {}, 'Show'),
          details.map(([label, value]) => [
            h('p', {}, h('strong', {}, label)),
            h('pre', {}, JSON.stringify(value, null, 2)),
          ]),
        ),
    ),
  );
}
