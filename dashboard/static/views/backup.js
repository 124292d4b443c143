// Backup and restore of the whole configuration (database, config, keys), for an
// admin: a download, and a file to restore from.
import { API, ApiError, currentUser } from '../api.js';
import { announce, confirmButton, h } from '../dom.js';

async function send(method, path, body) {
  // the session cookie goes by itself; a change carries the session's CSRF token
  const headers = {};
  if (method !== 'GET' && currentUser()?.csrfToken) headers['x-csrf-token'] = currentUser().csrfToken;
  if (body) headers['content-type'] = 'application/gzip';
  const res = await fetch(`${API}${path}`, { method, headers, body });
  if (!res.ok) {
    const data = await res.json().catch(() => ({ code: `HTTP_${res.status}`, message: res.statusText }));
    throw new ApiError(res.status, data);
  }
  return res;
}

async function download() {
  try {
    const res = await send('GET', '/backup');
    const name =
      /filename="([^"]+)"/.exec(res.headers.get('content-disposition') ?? '')?.[1] ?? 'portcullis.pcbak';
    const link = h('a', { href: window.URL.createObjectURL(await res.blob()), download: name });
    link.click();
    window.URL.revokeObjectURL(link.href);
    announce(`Backup saved as ${name}`);
  } catch (err) {
    announce(err.message, 'error');
  }
}

/** The backup section of the History page. */
export function backupSection() {
  const file = h('input', { type: 'file', accept: '.pcbak,application/gzip', 'aria-label': 'Backup file' });
  const restore = confirmButton('Restore', 'Yes, replace everything', async () => {
    const chosen = file.files?.[0];
    if (!chosen) {
      announce('Choose a backup file first.', 'error');
      return;
    }
    try {
      const answer = await (await send('POST', '/backup/restore', chosen)).json();
      announce(
        answer.restarting
          ? `Backup of ${new Date(answer.createdAt).toLocaleString()} restored; the gateway restarts now.`
          : 'Backup checked and staged; it is applied when the gateway restarts.',
      );
    } catch (err) {
      announce(err.message, 'error');
    }
  });
  return h(
    'section',
    { class: 'backup', 'aria-labelledby': 'backup-title' },
    h('h2', { id: 'backup-title' }, 'Backup'),
    h(
      'p',
      { class: 'hint' },
      'Everything in one file: the policy, the history, the settings and keys. Keep it safe: it holds the API token. A file that does not check out changes nothing.',
    ),
    h('button', { type: 'button', class: 'secondary', onclick: download }, 'Download a backup'),
    h('div', { class: 'restore' }, file, restore),
  );
}
