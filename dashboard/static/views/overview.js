// Overview: every VM with what is in force for it now, and what waits for a decision.
import { api, metrics, seg } from '../api.js';
import { h } from '../dom.js';
import { internetBadge, pauseControl, pauseNote, quarantineControl, quarantineNote } from './controls.js';

export async function overviewView(ctx) {
  const [vms, pending, samples] = await Promise.all([
    api('GET', '/vms'),
    api('GET', '/access-requests?status=pending&limit=100'),
    metrics(),
  ]);
  const states = await Promise.all(
    vms.map((vm) => api('GET', `/vms/${seg(vm.name)}/state`).catch(() => null)),
  );

  return h(
    'div',
    { class: 'view' },
    h('h1', { tabindex: '-1' }, 'Overview'),
    pending.length > 0 &&
      h(
        'p',
        { class: 'callout' },
        `${pending.length === 1 ? 'One request is' : `${pending.length} requests are`} waiting for your answer. `,
        h('a', { href: '#/requests', class: 'button' }, 'Answer requests'),
      ),
    h(
      'section',
      { 'aria-labelledby': 'vms-heading' },
      h('h2', { id: 'vms-heading' }, 'Virtual machines'),
      vms.length === 0
        ? h('p', {}, 'No VMs yet. Add them with the command line or the policy file.')
        : h(
            'ul',
            { class: 'cards' },
            vms.map((vm, i) => h('li', {}, vmCard(vm, states[i], vmCounters(samples, vm.name), ctx))),
          ),
    ),
    glance(samples),
  );
}

function vmCard(vm, state, counters, ctx) {
  return h(
    'article',
    { class: 'card vm-card', 'aria-labelledby': `vm-${vm.name}`, 'data-vm': vm.name },
    h(
      'header',
      { class: 'card-head' },
      h('h3', { id: `vm-${vm.name}` }, h('a', { href: `#/vm/${seg(vm.name)}` }, vm.name)),
      state && internetBadge(state.internet, vm),
    ),
    quarantineNote(vm),
    pauseNote(vm),
    h(
      'dl',
      { class: 'facts' },
      vm.owner && [h('dt', {}, 'Used by'), h('dd', {}, vm.owner)],
      h('dt', {}, 'Profile'),
      h('dd', {}, h('a', { href: '#/profiles' }, vm.profile)),
      h('dt', {}, 'Schedules'),
      h(
        'dd',
        {},
        !state || state.schedules.length === 0
          ? 'none'
          : state.schedules.map((s) => `${s.name} (${s.active ? 'on now' : 'not now'})`).join(', '),
      ),
      counters.map((c) => [h('dt', {}, c.label), h('dd', {}, c.value.toLocaleString())]),
    ),
    h(
      'div',
      { class: 'card-actions' },
      pauseControl(vm, ctx),
      h(
        'a',
        {
          href: `#/vm/${seg(vm.name)}`,
          class: 'button big',
          'aria-label': `Rules and details of ${vm.name}`,
        },
        'Rules and details',
      ),
      quarantineControl(vm, ctx),
    ),
  );
}

/** Counters the service exports per VM (metrics labelled vm="name"), if any. */
function vmCounters(samples, name) {
  return samples
    .filter((s) => s.labels.vm === name && s.name.endsWith('_total'))
    .map((s) => ({ label: counterLabel(s), value: s.value }));
}

function counterLabel(sample) {
  const base = sample.name
    .replace(/^portcullis_/, '')
    .replace(/_total$/, '')
    .replace(/_/g, ' ');
  const extra = Object.entries(sample.labels)
    .filter(([k]) => k !== 'vm')
    .map(([, v]) => v);
  return extra.length > 0 ? `${base} (${extra.join(', ')})` : base;
}

/** Gateway-wide counters from /metrics, when the service exposes them here. */
function glance(samples) {
  const sum = (name, where = () => true) =>
    samples.filter((s) => s.name === name && where(s.labels)).reduce((n, s) => n + s.value, 0);
  const has = (name) => samples.some((s) => s.name === name);
  const rows = [
    has('portcullis_dns_queries_total') && ['Websites looked up', sum('portcullis_dns_queries_total')],
    has('portcullis_dns_queries_total') && [
      'Look-ups blocked',
      sum('portcullis_dns_queries_total', (l) => l.action === 'block' || l.action === 'nxdomain'),
    ],
    has('portcullis_eve_alerts_total') && ['Security alerts', sum('portcullis_eve_alerts_total')],
    has('portcullis_nft_applies_total') && ['Firewall updates', sum('portcullis_nft_applies_total')],
  ].filter(Boolean);
  if (rows.length === 0) return null;
  return h(
    'section',
    { 'aria-labelledby': 'glance-heading' },
    h('h2', { id: 'glance-heading' }, 'Since the gateway started'),
    h(
      'dl',
      { class: 'glance' },
      rows.map(([label, value]) => h('div', {}, h('dt', {}, label), h('dd', {}, value.toLocaleString()))),
    ),
  );
}
