// Alerts: what the intrusion prevention system (Suricata) saw lately, its state, and the
// remote hosts it blocks, each with an undo.
import { ApiError, api, currentUser, seg } from '../api.js';
import { announce, confirmButton, formError, h, when } from '../dom.js';

export async function alertsView(ctx) {
  const [alerts, ips] = await Promise.all([
    api('GET', '/alerts?limit=100'),
    // an error here (SURICATA_FAILED: the IPS is not enabled) means no IPS to show
    api('GET', '/ips').catch((err) => {
      if (err instanceof ApiError) return null;
      throw err;
    }),
  ]);
  return h(
    'div',
    { class: 'view' },
    h('h1', { tabindex: '-1' }, 'Alerts'),
    ipsPanel(ips, ctx),
    h(
      'section',
      { class: 'panel', 'aria-labelledby': 'alerts-heading' },
      h('h2', { id: 'alerts-heading' }, 'Recent alerts'),
      h('p', { class: 'hint' }, 'Traffic the IPS found suspicious, newest first.'),
      alerts.length === 0
        ? h('p', { class: 'empty' }, 'No alerts. Nothing suspicious seen.')
        : h(
            'ol',
            { class: 'alerts', 'aria-label': 'Recent alerts' },
            alerts.map((a) => alertItem(a, ctx)),
          ),
    ),
  );
}

const SEVERITY = { 1: ['High', 'bad'], 2: ['Medium', 'warn'], 3: ['Low', 'neutral'] };

function alertItem(a, ctx) {
  const [severity, tone] = SEVERITY[a.severity] ?? [a.severity ? `Severity ${a.severity}` : null, 'neutral'];
  const blocked = a.action === 'blocked' || a.action === 'drop';
  return h(
    'li',
    { class: 'alert', 'data-alert': a.id },
    h(
      'div',
      { class: 'alert-head' },
      severity && h('span', { class: `pill ${tone}` }, severity),
      h('strong', { class: 'alert-signature' }, a.signature),
    ),
    h(
      'p',
      { class: 'alert-meta' },
      when(a.at),
      a.vm && [' · VM ', h('a', { href: `#/vm/${seg(a.vm)}` }, a.vm)],
      (a.src || a.dest) && [' · ', h('span', { class: 'mono' }, `${a.src ?? '?'} → ${a.dest ?? '?'}`)],
      a.category && ` · ${a.category}`,
      a.action && ` · ${blocked ? 'blocked' : a.action === 'allowed' ? 'let through' : a.action}`,
      a.signatureId !== undefined && a.signatureId !== null && ` · rule ${a.signatureId}`,
    ),
    // an admin can capture the alert's flow (its VM's frames between its two addresses)
    currentUser()?.role === 'admin' && a.vm && a.src && a.dest && captureFlow(a, ctx),
  );
}

function captureFlow(a, ctx) {
  const box = h('div', { class: 'rule-actions' }, formError());
  box.append(
    h(
      'button',
      {
        type: 'button',
        class: 'secondary',
        'aria-label': `Capture this flow: ${a.src} → ${a.dest} (alert ${a.id})`,
        onclick: async () => {
          try {
            const c = await api('POST', '/captures', { alertId: a.id, seconds: 60 });
            announce(`Capturing the flow of alert ${a.id} for ${c.seconds} s.`);
            window.location.hash = '#/captures';
          } catch (err) {
            ctx.fail(box, err);
          }
        },
      },
      'Capture this flow',
    ),
  );
  return box;
}

const STATUS_WORDS = {
  running: ['Running', 'good'],
  starting: ['Starting', 'warn'],
  backoff: ['Restarting', 'warn'],
  stopped: ['Stopped', 'bad'],
  failed: ['Failed', 'bad'],
};

function ipsPanel(ips, ctx) {
  if (!ips) {
    return h(
      'section',
      { class: 'panel', 'aria-labelledby': 'ips-heading' },
      h('h2', { id: 'ips-heading' }, 'Intrusion prevention'),
      h('p', { class: 'empty ips-off' }, 'The IPS is not running on this gateway.'),
    );
  }
  const status = (s) => {
    const [label, tone] = STATUS_WORDS[s.status] ?? [s.status, 'neutral'];
    return [
      h('span', { class: `pill ${tone}` }, label),
      s.since && ` since ${when(s.since)}`,
      s.reason && ` (${s.reason})`,
    ];
  };
  const rules = Array.isArray(ips.rules)
    ? ips.rules.reduce((n, r) => n + (r.rules_loaded ?? 0), 0)
    : undefined;
  return h(
    'section',
    { class: 'panel', 'aria-labelledby': 'ips-heading' },
    h('h2', { id: 'ips-heading' }, 'Intrusion prevention'),
    h(
      'dl',
      { class: 'facts' },
      h('dt', {}, 'IPS (blocks)'),
      h('dd', {}, status(ips.suricata)),
      ips.ids && [h('dt', {}, 'IDS (watches)'), h('dd', {}, status(ips.ids))],
      rules !== undefined && [h('dt', {}, 'Rules loaded'), h('dd', {}, rules.toLocaleString())],
    ),
    h('h3', {}, 'Blocked hosts'),
    ips.blocks.length === 0
      ? h('p', { class: 'empty' }, 'No host is blocked by the IPS.')
      : h(
          'ul',
          { class: 'plain-list blocks', 'aria-label': 'Hosts blocked by the IPS' },
          ips.blocks.map((b) => blockItem(b, ctx)),
        ),
  );
}

function blockItem(block, ctx) {
  const box = h('div', { class: 'rule-actions' }, formError());
  box.append(
    confirmButton(
      'Unblock',
      'Yes, unblock',
      async () => {
        try {
          await api('DELETE', `/ips/blocks/${seg(block.address)}`);
          announce(`${block.address} is no longer blocked.`);
          await ctx.refresh();
        } catch (err) {
          ctx.fail(box, err);
        }
      },
      { class: 'secondary', what: block.address },
    ),
  );
  return h(
    'li',
    { class: 'block', 'data-block': block.address },
    h(
      'div',
      { class: 'rule-text' },
      h('span', { class: 'mono' }, block.address),
      h('span', { class: 'rule-meta' }, `blocked until ${when(block.until)}`),
    ),
    box,
  );
}
