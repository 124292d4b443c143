// Overview: every VM with what is in force for it now, and what waits for a decision.
import { api, metrics, seg } from '../api.js';
import { announce, field, formError, h, select, when } from '../dom.js';
import { internetBadge, pauseControl, pauseNote, quarantineControl, quarantineNote } from './controls.js';

export async function overviewView(ctx) {
  const [vms, pending, samples, devices, profiles] = await Promise.all([
    api('GET', '/vms'),
    api('GET', '/access-requests?status=pending&limit=100'),
    metrics(),
    // unknown devices need the DHCP server of the gateway; none when it is not here
    api('GET', '/devices/unassigned').catch(() => []),
    api('GET', '/profiles').catch(() => []),
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
    devices.length > 0 && newDevices(devices, profiles, ctx),
    glance(samples),
  );
}

/** Devices that got an address from the gateway but are no VM yet, each with a form to add it. */
function newDevices(devices, profiles, ctx) {
  return h(
    'section',
    { 'aria-labelledby': 'devices-heading' },
    h('h2', { id: 'devices-heading' }, 'New devices'),
    h(
      'p',
      { class: 'hint' },
      'These devices got an address from the gateway but are not known yet. Add one to give it a profile.',
    ),
    h(
      'ul',
      { class: 'cards' },
      devices.map((d) => h('li', {}, deviceCard(d, profiles, ctx))),
    ),
  );
}

function deviceCard(device, profiles, ctx) {
  const title = device.hostname ?? device.mac;
  const headingId = `device-${device.mac.replace(/:/g, '')}`;
  const name = h('input', {
    name: 'name',
    type: 'text',
    autocomplete: 'off',
    maxlength: '31',
    value: suggestName(device.hostname),
  });
  const profile = select(
    'profile',
    profiles.map((p) => [p.name, p.description ? `${p.name}: ${p.description}` : p.name]),
  );
  const form = h(
    'form',
    { class: 'device-form', novalidate: true, 'aria-label': `Add ${title}` },
    formError(),
    field({
      label: 'Name',
      hint: 'Small letters, digits and dashes, starting with a letter.',
      path: '/body/name',
      control: name,
    }),
    field({ label: 'Profile', path: '/body/profile', control: profile }),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'big' }, 'Add this device')),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const vm = { name: name.value.trim(), mac: device.mac, ipv4: device.ipv4, profile: profile.value };
    try {
      await api('POST', '/vms', vm);
      announce(`${vm.name} added with the profile ${vm.profile}.`);
      await ctx.refresh();
    } catch (err) {
      ctx.fail(form, err);
    }
  });
  return h(
    'article',
    { class: 'card device-card', 'aria-labelledby': headingId, 'data-device': device.mac },
    h('header', { class: 'card-head' }, h('h3', { id: headingId }, title)),
    h(
      'dl',
      { class: 'facts' },
      h('dt', {}, 'MAC address'),
      h('dd', { class: 'mono' }, device.mac),
      h('dt', {}, 'IPv4 address'),
      h('dd', { class: 'mono' }, device.ipv4),
      h('dt', {}, 'Address lent until'),
      h('dd', {}, when(device.expires)),
    ),
    form,
  );
}

/** A VM name from a device's host name ("Kids-Laptop" → "kids-laptop"), or ''. */
function suggestName(hostname) {
  if (!hostname) return '';
  const s = hostname
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^[^a-z]+/, '')
    .slice(0, 31)
    .replace(/-+$/, '');
  return s;
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

/** A VM's traffic, look-ups, drops and alerts from /metrics (labelled vm="name"), if any. */
function vmCounters(samples, name) {
  const mine = samples.filter((s) => s.labels.vm === name);
  const sum = (metric, where = () => true) =>
    mine.filter((s) => s.name === metric && where(s.labels)).reduce((n, s) => n + s.value, 0);
  const has = (metric) => mine.some((s) => s.name === metric);
  return [
    has('portcullis_vm_bytes_total') && {
      label: 'Downloaded',
      value: bytes(sum('portcullis_vm_bytes_total', (l) => l.direction === 'in')),
    },
    has('portcullis_vm_bytes_total') && {
      label: 'Uploaded',
      value: bytes(sum('portcullis_vm_bytes_total', (l) => l.direction === 'out')),
    },
    has('portcullis_dns_vm_queries_total') && {
      label: 'Look-ups',
      value: sum('portcullis_dns_vm_queries_total'),
    },
    has('portcullis_dns_vm_blocks_total') && {
      label: 'Look-ups blocked',
      value: sum('portcullis_dns_vm_blocks_total'),
    },
    has('portcullis_vm_drops_total') && { label: 'Packets dropped', value: sum('portcullis_vm_drops_total') },
    has('portcullis_alerts_total') && { label: 'Alerts', value: sum('portcullis_alerts_total') },
  ].filter(Boolean);
}

/** Bytes the way people read them: 1.2 MB. */
export function bytes(n) {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) [n, i] = [n / 1000, i + 1];
  return `${n.toLocaleString(undefined, { maximumFractionDigits: i === 0 ? 0 : 1 })} ${units[i]}`;
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
