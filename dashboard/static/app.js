// The dashboard: a single page whose views follow the URL hash (#/vm/kid).
import { ApiError, api, currentUser, login, logout, whoAmI } from './api.js';
import { announce, field, h, showErrors } from './dom.js';
import { onLive } from './live.js';
import { activityView } from './views/activity.js';
import { alertsView } from './views/alerts.js';
import { auditView } from './views/audit.js';
import { bundlesView } from './views/bundles.js';
import { capturesView } from './views/captures.js';
import { overviewView } from './views/overview.js';
import { profilesView } from './views/profiles.js';
import { requestsView } from './views/requests.js';
import { schedulesView } from './views/schedules.js';
import { vmView } from './views/vm.js';

/**
 * Hash routes: pattern, nav entry, view. A view returns the content of <main>. A
 * parent sees the pages of their VMs only: not the profiles' page, not the history.
 */
const PARENT_NAV = new Set(['overview', 'requests', 'schedules', 'alerts']);
/** Pages for admins only (a capture holds any VM's traffic). */
const ADMIN_NAV = new Set(['captures']);
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
  { pattern: /^\/captures$/, nav: 'captures', view: capturesView },
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

/** Whether the logged-in user's role shows this nav entry. */
function allowed(nav) {
  const role = currentUser()?.role;
  if (ADMIN_NAV.has(nav)) return role === 'admin';
  return role !== 'parent' || PARENT_NAV.has(nav);
}

async function render({ keepFocus = false } = {}) {
  if (!currentUser()) return showLogin();
  const [path, search = ''] = window.location.hash.replace(/^#/, '').split('?');
  const found = ROUTES.find((r) => r.pattern.test(path));
  const route = found && allowed(found.nav) ? found : ROUTES[0];
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

/** Shows an API error in a form (a 401 has already brought the login back). */
function fail(form, err) {
  if (!(err instanceof ApiError)) throw err;
  showErrors(form, err);
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

/** The login page: user name and password; wrong ones and too many tries said at the form. */
function showLogin() {
  document.body.classList.add('logged-out');
  document.getElementById('account').hidden = true;
  const user = h('input', { name: 'user', autocomplete: 'username', required: true, autocapitalize: 'none' });
  const password = h('input', {
    name: 'password',
    type: 'password',
    autocomplete: 'current-password',
    required: true,
  });
  const form = h(
    'form',
    {
      class: 'panel login-form',
      'aria-label': 'Log in',
      novalidate: true,
      onsubmit: async (e) => {
        e.preventDefault();
        try {
          await login(user.value.trim().toLowerCase(), password.value);
        } catch (err) {
          password.value = '';
          return fail(form, err);
        }
        await loggedIn();
      },
    },
    h('h1', { tabindex: '-1' }, 'Log in'),
    h('p', { class: 'hint' }, 'Use the name and password your administrator gave you.'),
    field({ label: 'User name', path: '/body/user', control: user }),
    field({ label: 'Password', path: '/body/password', control: password }),
    h('p', { class: 'form-error', hidden: true }),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Log in')),
  );
  main.replaceChildren(form);
  document.title = 'Log in – Portcullis';
  user.focus();
}

/** After a login (or with a session already): the account bar, the nav for the role, the page. */
async function loggedIn() {
  const me = currentUser();
  document.body.classList.remove('logged-out');
  document.getElementById('account').hidden = false;
  document.getElementById('account-name').textContent = `${me.name} (${me.role})`;
  for (const link of document.querySelectorAll('[data-nav]'))
    link.closest('li').hidden = !allowed(link.dataset.nav);
  startLive();
  await render();
}

function setupAccount() {
  const out = (everywhere) => async () => {
    try {
      await logout(everywhere);
    } catch {
      // the session has ended either way
    }
    announce(everywhere ? 'Logged out on every device.' : 'Logged out.');
    showLogin();
  };
  document.getElementById('logout').addEventListener('click', out(false));
  document.getElementById('logout-all').addEventListener('click', out(true));
}

// live, not polled: a new alert redraws the alerts page, a request the count and its
// page; the stream opens once somebody is logged in (it needs the session)
let live = false;
function startLive() {
  if (live) return;
  live = true;
  onLive('alert', () => {
    if (currentNav() === 'alerts') void render({ keepFocus: true });
  });
  onLive('request', () => {
    if (currentNav() === 'requests') void render({ keepFocus: true });
    else void updatePendingCount();
  });
}

setupAccount();
window.addEventListener('hashchange', () => void render());
window.addEventListener('portcullis:logged-out', () => showLogin());
if (await whoAmI()) await loggedIn();
else showLogin();
