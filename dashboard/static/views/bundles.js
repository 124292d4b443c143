// Rule updates: the vendor bundle in force, its age, the last result, the update running,
// and (for admins: the API token) an update now and a rollback to the version before.
// Where a running update is follows the live stream; its end reloads the view.
import { ApiError, api } from '../api.js';
import { announce, confirmButton, h, when } from '../dom.js';
import { onLive } from '../live.js';

const RESULTS = {
  installed: 'New rules in force',
  current: 'Already up to date',
  failed: 'Refused; the rules in force stayed',
  'rolled-back': 'Unhealthy after the switch; put back by itself',
  'manual-rollback': 'Rolled back by hand',
  reapplied: 'Rule changes applied',
};

function age(seconds) {
  if (seconds === undefined) return '';
  const days = Math.floor(seconds / 86_400);
  const hours = Math.floor((seconds % 86_400) / 3600);
  return days > 0 ? `${days} d ${hours} h old` : `${hours} h old`;
}

function progressText(p) {
  if (!p || p.phase === 'idle') return 'Idle';
  if (p.total)
    return `${p.phase}: ${Math.round((100 * p.bytes) / p.total)}% of ${(p.total / 1e6).toFixed(1)} MB`;
  return p.phase + (p.version ? ` (version ${p.version})` : '');
}

export async function bundlesView(ctx) {
  let s;
  try {
    s = await api('GET', '/bundles');
  } catch (err) {
    if (err instanceof ApiError && err.code === 'CONFIG_INVALID')
      return h(
        'div',
        { class: 'view' },
        h('h1', { tabindex: '-1' }, 'Rule updates'),
        h('p', { class: 'empty' }, err.message),
      );
    throw err;
  }
  const act = (path, done) => async () => {
    try {
      const r = await api('POST', path, {});
      announce(`${RESULTS[r.result] ?? r.result}${r.active ? ` (version ${r.active})` : ''}`);
    } catch (err) {
      announce(err instanceof ApiError ? err.message : String(err), 'error');
    }
    done();
  };
  const last = s.last;
  const now = h('dd', { 'data-bundle-progress': s.progress.phase }, progressText(s.progress));
  const view = h(
    'div',
    { class: 'view' },
    h('h1', { tabindex: '-1' }, 'Rule updates'),
    h(
      'section',
      { class: 'panel', 'data-bundle': '' },
      h(
        'dl',
        { class: 'facts' },
        h('dt', {}, 'In force'),
        h(
          'dd',
          { 'data-bundle-version': s.active?.version ?? '' },
          s.active ? `Version ${s.active.version}, ${age(s.active.ageSeconds)}` : 'None (the shipped rules)',
        ),
        h('dt', {}, 'Last result'),
        h(
          'dd',
          { 'data-bundle-result': last?.result ?? '' },
          last
            ? `${RESULTS[last.result] ?? last.result} – ${when(last.at)}${last.code ? ` (${last.code})` : ''}`
            : 'None yet',
        ),
        h('dt', {}, 'Now'),
        now,
        h('dt', {}, 'Kept'),
        h('dd', {}, s.versions.join(', ') || 'none'),
        h('dt', {}, 'From'),
        h('dd', { class: 'mono' }, `${s.source} (${s.channel})`),
      ),
      h(
        'p',
        { class: 'actions' },
        h(
          'button',
          { type: 'button', onclick: act('/bundles/update', ctx.refresh) },
          'Look for an update now',
        ),
        s.versions.some((v) => s.active && v < s.active.version) &&
          confirmButton('Roll back', 'Yes, roll back', act('/bundles/rollback', ctx.refresh), {
            class: 'secondary',
            what: `to the version before ${s.active.version}`,
          }),
      ),
      s.sources.length > 0 &&
        h(
          'p',
          { class: 'hint' },
          `Extra rule sources, trusted only by the sha256 an admin pinned (not signed): ${s.sources.map((x) => x.name).join(', ')}`,
        ),
    ),
  );
  const off = onLive('bundle', (p) => {
    if (!document.body.contains(view)) return off();
    now.dataset.bundleProgress = p.phase;
    now.textContent = progressText(p);
    // the update ended: its result, the version in force and the versions kept
    if (p.phase === 'idle') {
      off();
      ctx.refresh();
    }
  });
  return view;
}
