// Activity: what happens now (alerts, blocked look-ups, access requests, live), and
// charts of the last hour or day: traffic per VM, look-ups allowed and blocked, and
// today's time against each VM's budget. Charts are uPlot, served by the gateway.
import uPlot from '/vendor/uPlot.esm.js';
import { ApiError, api, seg } from '../api.js';
import { h } from '../dom.js';
import { onLive } from '../live.js';
import { bytes } from './overview.js';

const FEED_SIZE = 50;
/** Live events seen since the page loaded, newest first (kept across views). */
const feed = [];
let feedStarted = false;

function startFeed() {
  if (feedStarted) return;
  feedStarted = true;
  for (const type of ['alert', 'block', 'request']) {
    onLive(type, (data) => {
      feed.unshift({ type, data, seen: new Date() });
      feed.length = Math.min(feed.length, FEED_SIZE);
      const list = document.getElementById('live-feed');
      if (list) list.replaceChildren(...feed.map(feedItem));
    });
  }
}

export async function activityView(ctx) {
  startFeed();
  const range = ctx.query.get('range') === 'day' ? 'day' : 'hour';
  const [history, vms] = await Promise.all([
    api('GET', `/stats/history?range=${range}`).catch((err) => {
      if (err instanceof ApiError) return null;
      throw err;
    }),
    api('GET', '/vms'),
  ]);
  const budgets = (
    await Promise.all(
      vms.map((vm) =>
        api('GET', `/vms/${seg(vm.name)}/budget`)
          .then((b) => ({ vm: vm.name, ...b }))
          .catch(() => null),
      ),
    )
  ).filter(Boolean);

  const traffic = h('div', {
    class: 'chart',
    id: 'chart-traffic',
    role: 'img',
    'aria-label': 'Traffic per VM',
  });
  const dnsChart = h('div', {
    class: 'chart',
    id: 'chart-dns',
    role: 'img',
    'aria-label': 'Look-ups allowed and blocked',
  });
  const view = h(
    'div',
    { class: 'view' },
    h('h1', { tabindex: '-1' }, 'Activity'),
    h(
      'section',
      { class: 'panel', 'aria-labelledby': 'feed-heading' },
      h('h2', { id: 'feed-heading' }, 'Live'),
      h('p', { class: 'hint' }, 'Alerts, blocked look-ups and requests as they happen, newest first.'),
      h(
        'ol',
        { class: 'feed', id: 'live-feed', 'aria-live': 'polite', 'aria-label': 'Live events' },
        feed.length === 0
          ? [h('li', { class: 'empty' }, 'Nothing yet. New events appear here by themselves.')]
          : feed.map(feedItem),
      ),
    ),
    h(
      'section',
      { class: 'panel', 'aria-labelledby': 'charts-heading' },
      h('h2', { id: 'charts-heading' }, range === 'day' ? 'The last day' : 'The last hour'),
      h(
        'p',
        { class: 'actions' },
        h(
          'a',
          {
            href: '#/activity?range=hour',
            class: `button ${range === 'hour' ? '' : 'secondary'}`,
            'aria-current': range === 'hour' ? 'true' : null,
          },
          'Hour',
        ),
        h(
          'a',
          {
            href: '#/activity?range=day',
            class: `button ${range === 'day' ? '' : 'secondary'}`,
            'aria-current': range === 'day' ? 'true' : null,
          },
          'Day',
        ),
      ),
      history === null
        ? h('p', { class: 'empty' }, 'This gateway keeps no traffic history.')
        : [h('h3', {}, 'Traffic per VM'), traffic, h('h3', {}, 'Look-ups allowed and blocked'), dnsChart],
    ),
    h(
      'section',
      { class: 'panel', 'aria-labelledby': 'budget-heading' },
      h('h2', { id: 'budget-heading' }, 'Time today'),
      budgets.length === 0
        ? h('p', { class: 'empty' }, 'No VM has a daily time budget.')
        : h('ul', { class: 'budgets' }, budgets.map(budgetItem)),
    ),
  );
  if (history !== null) {
    // drawn once the view is in the page (uPlot measures its container)
    window.requestAnimationFrame(() => {
      drawTraffic(traffic, history);
      drawDns(dnsChart, history);
    });
    // a new point: draw again, staying where the reader is
    const off = onLive('history', () => {
      if (!document.body.contains(view)) return off();
      ctx.refresh();
      off();
    });
  }
  return view;
}

function feedItem({ type, data, seen }) {
  const time = h('time', { datetime: seen.toISOString() }, seen.toLocaleTimeString());
  if (type === 'alert')
    return h(
      'li',
      { class: 'feed-alert', 'data-kind': 'alert' },
      h('span', { class: `pill ${data.severity === 1 ? 'bad' : 'warn'}` }, 'Alert'),
      ' ',
      h('strong', {}, data.signature),
      data.vm && [' · ', h('a', { href: `#/vm/${seg(data.vm)}` }, data.vm)],
      ' · ',
      time,
    );
  if (type === 'block')
    return h(
      'li',
      { 'data-kind': 'block' },
      h('span', { class: 'pill neutral' }, 'Blocked'),
      ' ',
      h('span', { class: 'mono' }, data.name),
      ` (${data.category})`,
      data.vm && ` · ${data.vm}`,
      ' · ',
      time,
    );
  return h(
    'li',
    { 'data-kind': 'request' },
    h('span', { class: 'pill own' }, 'Request'),
    ' ',
    data.action === 'create' ? 'New request' : `Request ${data.action === 'approve' ? 'approved' : 'denied'}`,
    ' · ',
    h('a', { href: '#/requests' }, 'see requests'),
    ' · ',
    time,
  );
}

function budgetItem(b) {
  const used = Math.round((b.usedSeconds ?? 0) / 60);
  const allowed = (b.dailyMinutes ?? 0) + (b.extraMinutes ?? 0);
  return h(
    'li',
    {},
    h('a', { href: `#/vm/${seg(b.vm)}` }, b.vm),
    ' ',
    h('meter', {
      min: '0',
      max: String(Math.max(allowed, 1)),
      value: String(used),
      'aria-label': `${b.vm}: time used today`,
    }),
    ` ${used} of ${allowed} min`,
  );
}

const COLOURS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#4b5563'];

function chartSize(el) {
  return { width: Math.max(el.clientWidth, 300), height: 220 };
}

function drawTraffic(el, history) {
  const times = history.times.map((t) => t / 1000);
  const series = [{}];
  const data = [times];
  Object.entries(history.vms).forEach(([vm, s], i) => {
    for (const dir of ['in', 'out']) {
      series.push({
        label: `${vm} ${dir === 'in' ? 'down' : 'up'}`,
        stroke: COLOURS[i % COLOURS.length],
        dash: dir === 'out' ? [6, 4] : undefined,
        value: (_u, v) => (v === null ? '' : `${bytes(v / history.step)}/s`),
      });
      data.push(s[dir].map((b) => b / history.step));
    }
  });
  new uPlot(
    {
      ...chartSize(el),
      series,
      axes: [{}, { values: (_u, vals) => vals.map((v) => `${bytes(v)}/s`), size: 80 }],
    },
    data,
    el,
  );
}

function drawDns(el, history) {
  const times = history.times.map((t) => t / 1000);
  new uPlot(
    {
      ...chartSize(el),
      series: [
        {},
        { label: 'allowed', stroke: '#16a34a', fill: 'rgba(22,163,74,0.1)' },
        { label: 'blocked', stroke: '#dc2626', fill: 'rgba(220,38,38,0.1)' },
      ],
    },
    [times, history.dns.allowed, history.dns.blocked],
    el,
  );
}
