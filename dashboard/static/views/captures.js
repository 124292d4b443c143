// Packet captures (admins only): one VM for some seconds, or an alert's flow (started
// from the Alerts page); each downloadable as a pcap once it has ended.
import { API, api, seg } from '../api.js';
import { announce, clearErrors, confirmButton, field, formError, h, when } from '../dom.js';

/** While a capture runs, the page is drawn again this often, ms. */
const RUNNING_REFRESH_MS = 1000;
let refreshTimer;

export async function capturesView(ctx) {
  const [captures, vms] = await Promise.all([api('GET', '/captures'), api('GET', '/vms')]);
  window.clearTimeout(refreshTimer);
  if (captures.some((c) => c.state === 'running')) {
    const tick = () => {
      if (!window.location.hash.startsWith('#/captures')) return;
      // a Stop or Delete waiting for its confirmation: redrawing would take it away
      if (document.querySelector('.captures button.armed')) {
        refreshTimer = window.setTimeout(tick, RUNNING_REFRESH_MS);
        return;
      }
      void ctx.refresh();
    };
    refreshTimer = window.setTimeout(tick, RUNNING_REFRESH_MS);
  }
  return h(
    'div',
    { class: 'view' },
    h('h1', { tabindex: '-1' }, 'Packet captures'),
    startForm(vms, ctx),
    h(
      'section',
      { class: 'panel', 'aria-labelledby': 'captures-heading' },
      h('h2', { id: 'captures-heading' }, 'Captures'),
      h(
        'p',
        { class: 'hint' },
        'Newest first. A capture ends after its seconds or at its size limit; download it as a pcap for Wireshark or portcullis replay.',
      ),
      captures.length === 0
        ? h('p', { class: 'empty' }, 'No captures yet.')
        : h(
            'ol',
            { class: 'plain-list captures', 'aria-label': 'Captures' },
            captures.map((c) => item(c, ctx)),
          ),
    ),
  );
}

function startForm(vms, ctx) {
  const vm = h(
    'select',
    { name: 'vm' },
    vms.map((v) => h('option', { value: v.name }, v.name)),
  );
  const seconds = h('input', {
    name: 'seconds',
    type: 'number',
    min: '1',
    max: '300',
    value: '10',
    required: true,
  });
  const form = h(
    'form',
    { class: 'panel capture-form', novalidate: true, 'aria-label': 'Start a capture' },
    h('h2', {}, 'Start a capture'),
    h('p', { class: 'hint' }, "Every frame to and from the VM, on the gateway's side of its link."),
    formError(),
    field({ label: 'VM', path: '/body/vm', control: vm }),
    field({ label: 'Seconds', hint: '1 to 300', path: '/body/seconds', control: seconds }),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Start capture')),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors(form);
    try {
      const c = await api('POST', '/captures', { vm: vm.value, seconds: Number(seconds.value) });
      announce(`Capturing ${c.vm} for ${c.seconds} s.`);
      await ctx.refresh();
    } catch (err) {
      ctx.fail(form, err);
    }
  });
  return form;
}

const STATE = { running: ['Running', 'warn'], done: ['Done', 'good'], failed: ['Failed', 'bad'] };
const ENDS = { time: 'its time was up', size: 'it reached its size limit', stopped: 'it was stopped' };

function size(bytes) {
  return bytes < 1024 * 1024 ? `${Math.ceil(bytes / 1024)} KiB` : `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function item(c, ctx) {
  const [label, tone] = STATE[c.state] ?? [c.state, 'neutral'];
  const box = h('div', { class: 'rule-actions' }, formError());
  if (c.state !== 'running' && c.bytes > 0) {
    box.append(
      h(
        'a',
        {
          class: 'button',
          href: `${API}/captures/${seg(c.id)}.pcap`,
          download: `portcullis-${c.id}.pcap`,
          'aria-label': `Download the capture of ${c.vm} (${c.id})`,
        },
        'Download pcap',
      ),
    );
  }
  box.append(
    confirmButton(
      c.state === 'running' ? 'Stop' : 'Delete',
      'Yes, delete',
      async () => {
        try {
          await api('DELETE', `/captures/${seg(c.id)}`);
          announce('Capture deleted.');
          await ctx.refresh();
        } catch (err) {
          ctx.fail(box, err);
        }
      },
      { class: 'secondary', what: `the capture of ${c.vm}` },
    ),
  );
  return h(
    'li',
    { class: 'capture', 'data-capture': c.id, 'data-state': c.state },
    h(
      'div',
      { class: 'rule-text' },
      h(
        'span',
        {},
        h('span', { class: `pill ${tone}` }, label),
        ' ',
        h('strong', {}, c.vm),
        c.alertId && ` · alert ${c.alertId}`,
      ),
      h(
        'span',
        { class: 'rule-meta' },
        `${when(c.startedAt)} · ${c.seconds} s · `,
        c.state === 'running' ? `${size(c.bytes)} so far` : `${c.packets} packets, ${size(c.bytes)}`,
        c.reason && ` · ${ENDS[c.reason] ?? c.reason}`,
        // tcpdump did not keep up: the file misses these
        c.dropped > 0 && ` · ${c.dropped} packets lost (the gateway was too busy)`,
      ),
      h('span', { class: 'rule-meta mono' }, `${c.iface}: ${c.filter}`),
    ),
    box,
  );
}
