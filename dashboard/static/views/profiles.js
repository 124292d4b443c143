// Profiles: what each kind of VM may do. Read-only here; built-ins cannot change at all.
import { api } from '../api.js';
import { h } from '../dom.js';
import { internetWords, ruleWords } from '../words.js';

export async function profilesView() {
  const [profiles, vms] = await Promise.all([api('GET', '/profiles'), api('GET', '/vms')]);
  return h(
    'div',
    { class: 'view' },
    h('h1', { tabindex: '-1' }, 'Profiles'),
    h(
      'p',
      { class: 'hint' },
      'A profile is what a kind of VM may do. Built-in profiles come with Portcullis and cannot be changed; ' +
        'your own are edited with the command line or the policy file.',
    ),
    h(
      'ul',
      { class: 'cards' },
      profiles.map((p) =>
        h(
          'li',
          {},
          profileCard(
            p,
            vms.filter((v) => v.profile === p.name),
          ),
        ),
      ),
    ),
  );
}

function profileCard(p, users) {
  const dns = p.dns ?? {};
  const yes = (b) => (b ? 'yes' : 'no');
  return h(
    'article',
    { class: 'card', 'aria-labelledby': `profile-${p.name}`, 'data-profile': p.name },
    h(
      'header',
      { class: 'card-head' },
      h('h2', { id: `profile-${p.name}` }, p.name),
      h('span', { class: `pill ${p.builtin ? 'neutral' : 'own'}` }, p.builtin ? 'Built-in' : 'Your own'),
    ),
    p.description && h('p', {}, p.description),
    h(
      'dl',
      { class: 'facts' },
      h('dt', {}, 'Internet'),
      h('dd', {}, internetWords(p.internet).text.replace(/^Internet /, '')),
      h('dt', {}, 'Used by'),
      h('dd', {}, users.length > 0 ? users.map((v) => v.name).join(', ') : 'no VM'),
      h('dt', {}, 'May reach VMs'),
      h('dd', {}, p.reach.length > 0 ? p.reach.join(', ') : 'none'),
      h('dt', {}, 'Corporate VPN'),
      h('dd', {}, yes(p.vpn)),
      p.isolated && [h('dt', {}, 'Isolated'), h('dd', {}, 'only DNS and update servers')],
      h('dt', {}, 'Intrusion prevention'),
      h('dd', {}, p.ips.mode === 'off' ? 'off' : `${p.ips.mode.toUpperCase()}, ${p.ips.failure}`),
      p.allowDomains?.length > 0 && [h('dt', {}, 'Allowed sites'), h('dd', {}, p.allowDomains.join(', '))],
      dns.safeSearch !== undefined && [h('dt', {}, 'SafeSearch'), h('dd', {}, yes(dns.safeSearch))],
      dns.categories?.length > 0 && [
        h('dt', {}, 'Blocked categories'),
        h('dd', {}, dns.categories.join(', ')),
      ],
      dns.services?.length > 0 && [h('dt', {}, 'Blocked services'), h('dd', {}, dns.services.join(', '))],
      dns.blockDoh !== undefined && [
        h('dt', {}, 'Encrypted DNS bypass blocked'),
        h('dd', {}, yes(dns.blockDoh)),
      ],
    ),
    p.rules.length > 0 &&
      h(
        'details',
        {},
        h('summary', {}, `${p.rules.length} rule${p.rules.length > 1 ? 's' : ''}`),
        h(
          'ol',
          { class: 'plain-list' },
          p.rules.map((r) => h('li', {}, ruleWords(r))),
        ),
      ),
  );
}
