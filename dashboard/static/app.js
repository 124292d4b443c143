// The dashboard: a single page whose views follow the URL hash (#/vm/kid).
import { ApiError, api, getToken, setToken } from './api.js';
import { announce, h, showErrors } from './dom.js';
import { onLive } from './live.js';
import { activityView } from './views/activity.js';
import { alertsView } from './views/alerts.js';
import { auditView } from './views/audit.js';
import { bundlesView } from './views/bundles.js';
import { overviewView } from './views/overview.js';
import { profilesView } from './views/profiles.js';
import { requestsView } from './views/requests.js';
import { schedulesView } from './views/schedules.js';
import { vmView } from './views/vm.js';

/** Hash routes: pattern, nav entry, view. A view returns the content of <main>. */
const ROUTES = [
  { pattern: /^\/?$/, nav: 'overview', view: overviewView },
  { pattern: /^\/vm\/([^/]+)$/, nav: 'overview', view: vmView },
  { pattern: /^\/profiles$/, nav: 'profiles', view: profilesView },
  { pattern: /^\/schedules$/, nav: 'schedules', view: schedulesView },
  { pattern: /^\/requests$/, nav: 'requests', view: requestsView },
  { pattern: /^\/alerts$/, nav: 'alerts', view: alertsView },
  { pattern: /^\/activity$/, nav: 'activity', view: activityView },
  { pattern: /^\/audit$/, nav: 'audit', view: auditView },
  { pattern: /^\/bundles$/, nav: 'bundles', view: bundlesView },
];

const main = document.getElementById('main');

/**
 * What every view gets: the route's parameters and query, `refresh()` to draw the
 * view again after a change, and `fail(form, error)` to show an API error in a form.
 */
const ctx = {
  params: [],
  query: new URLSearchParams(),
  refresh: () => render({ keepFocus: true }),
  fail,
};

async function render({ keepFocus = false } = {}) {
  const [path, search = ''] = window.location.hash.replace(/^#/, '').split('?');
  const route = ROUTES.find((r) => r.pattern.test(path)) ?? ROUTES[0];
  ctx.params = (route.pattern.exec(path) ?? []).slice(1).map(decodeURIComponent);
  ctx.query = new URLSearchParams(search);
  for (const link of document.querySelectorAll('[data-nav]')) {
    if (link.dataset.nav === route.nav) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  let content;
  try {
    content = await route.view(ctx);
  } catch (err) {
    content = errorPage(err);
  }
  const scroll = window.scrollY;
  main.replaceChildren(content);
  const title = main.querySelector('h1')?.textContent;
  document.title = title ? `${title} – Portcullis` : 'Portcullis';
  if (keepFocus) window.scrollTo(0, scroll);
  else main.querySelector('h1')?.focus();
  void updatePendingCount();
}

function currentNav() {
  const path = window.location.hash.replace(/^#/, '').split('?')[0];
  return (ROUTES.find((r) => r.pattern.test(path)) ?? ROUTES[0]).nav;
}

function errorPage(err) {
  return h(
    'section',
    { class: 'panel' },
    h('h1', { tabindex: '-1' }, 'Something went wrong'),
    h('p', { class: 'form-error' }, err instanceof ApiError ? err.message : String(err)),
    h('p', {}, h('a', { href: '#/', class: 'button secondary' }, 'Back to the overview')),
  );
}

/**
 * Shows an API error in a form. A missing or wrong token is also shown at the token
 * field, which opens for it.
 */
function fail(form, err) {
  if (!(err instanceof ApiError)) throw err;
  showErrors(form, err);
  if (err.code === 'UNAUTHORIZED') {
    const panel = document.getElementById('token-panel');
    const box = document.getElementById('token-error');
    panel.open = true;
    box.textContent = getToken()
      ? 'This token was not accepted. Enter the right one.'
      : 'Changes need the API token. Enter it here.';
    box.hidden = false;
    document.getElementById('token-input').setAttribute('aria-invalid', 'true');
  }
}

let countRequests = 0;
async function updatePendingCount() {
  const badge = document.getElementById('pending-count');
  const mine = ++countRequests;
  try {
    const pending = await api('GET', '/access-requests?status=pending&limit=100');
    if (mine !== countRequests) return; // a newer count is on its way
    badge.textContent = pending.length > 0 ? `${pending.length} waiting` : '';
    badge.hidden = pending.length === 0;
  } catch {
    badge.hidden = true;
  }
}

function setupToken() {
  const form = document.getElementById('token-form');
  const input = document.getElementById('token-input');
  const panel = document.getElementById('token-panel');
  const summary = panel.querySelector('summary');
  const label = () => {
    summary.textContent = getToken() ? 'API token (saved)' : 'API token';
  };
  const reset = () => {
    document.getElementById('token-error').hidden = true;
    input.removeAttribute('aria-invalid');
  };
  label();
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    setToken(input.value.trim());
    input.value = '';
    reset();
    label();
    panel.open = false;
    announce(getToken() ? 'Token saved in this browser.' : 'Token forgotten.');
  });
  document.getElementById('token-clear').addEventListener('click', () => {
    setToken('');
    input.value = '';
    reset();
    label();
    announce('Token forgotten.');
  });
}

setupToken();
window.addEventListener('hashchange', () => void render());
// live, not polled: a new alert redraws the alerts page, a request the count and its page
onLive('alert', () => {
  if (currentNav() === 'alerts') void render({ keepFocus: true });
});
onLive('request', () => {
  if (currentNav() === 'requests') void render({ keepFocus: true });
  else void updatePendingCount();
});
await render({ keepFocus: true });
