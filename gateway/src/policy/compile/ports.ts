import { portMark } from '../../nft/marks.js';
import { TABLE } from '../../nft/names.js';
import type { NftStatement, NftValue, SetSpec, TableSpec, TextTable } from '../../nft/types.js';
import { PRIO } from '../../nft/types.js';
import type { Vm } from '../model.js';
import { normaliseMac } from '../net.js';
import { ACCEPT, DROP, counter, m, meta, payload } from './statements.js';

/**
 * Port identity: the guest bridge's table (`bridge portcullis`). Every guest's link
 * ends on a port of its own on the security VM's guest bridge (the LAN interface), so
 * the port a frame came in on says which guest sent it, whatever MAC and address it
 * carries. At `priority raw` of the bridge's prerouting hook this table
 *
 * - drops 802.1Q and 802.1ad tagged frames (`vlan_dropped`): a guest has no business
 *   with VLANs, and a tag must never reach a trunk;
 * - drops frames with the MAC of a VM that has a port from any other port
 *   (`port_mac_dropped`), before the bridge learns where that MAC is: no frame meant for
 *   the VM can be drawn to another port;
 * - lets IP frames from a VM's MAC on the VM's own port through with one look-up that
 *   also sets their mark (the common frame: none of the checks below applies to it);
 * - sets the packet mark to the port's id (`portMark`) for the port of a VM: the inet
 *   table's anti-spoofing accepts a registered MAC . IPv4 pair only together with the
 *   mark of the VM's port (a VM without a port: with any mark, on any port, as before
 *   ports existed: give every VM its port);
 * - filters ARP, which the inet table never sees: on a VM's port only ARP whose sender
 *   address is that VM's (or 0.0.0.0, a probe); a VM without a port: its MAC . address
 *   from any port; the unassigned pool only with MACs no VM has. Anything else
 *   (another guest's address, the appliance's, any other) is dropped and counted
 *   (`arp_dropped`). The sender MAC on a VM's own port is left to the layers behind:
 *   the service pins the VM's neighbour entry (`nud permanent`) and its bridge entry
 *   (static, sticky), and the inet table drops IPv4 of a MAC that is not the port's VM's;
 * - caps the unknown devices of a port: frames from MACs no VM has are let through for
 *   at most `perPort` such MACs a port at a time (a dynamic set per port of a VM, of that
 *   size; the ports without a VM share one), each kept while it sends and for the
 *   unknown-device lease time after (`unknown_mac_limited`). With the DHCP check
 *   ({@link frameChecksTable}: a DHCP client's hardware address must be the frame's
 *   source MAC) a guest inventing MACs holds at most `perPort` leases of the pool.
 *
 * The bridge hooks see every bridge of the security VM; the guest bridge is its only one.
 * Pure.
 */

/** The ids of the VMs that have a port: 1, 2, … in the order given (sorted by name). */
export function portIds(vms: readonly Vm[]): Map<string, number> {
  const ids = new Map<string, number>();
  for (const vm of vms) if (vm.port !== undefined) ids.set(vm.name, ids.size + 1);
  return ids;
}

/**
 * The packet mark frames of `vm` carry when they come in on its port; for a VM without
 * a port, any mark (an interval set's range): it is its MAC and address on any port.
 */
export function vmMark(vm: Vm, ids: ReadonlyMap<string, number>): NftValue {
  const id = ids.get(vm.name);
  return id === undefined ? { range: [0, 0xffffffff] } : portMark(id);
}

/** The unknown devices (MACs no VM has) a port may have at a time, when not configured. */
export const UNKNOWN_PER_PORT = 4;
/** How long an unknown MAC keeps its place after its last frame, s, when not configured (10 min: the pool's lease). */
export const UNKNOWN_HOLD_SECONDS = 600;

/** The DHCP pool of unknown devices, and how many of them a port may have. */
export interface UnassignedPool {
  readonly from: string;
  readonly to: string;
  /** Unknown MACs a port may use at a time, 1-1000. Default {@link UNKNOWN_PER_PORT}. */
  readonly perPort?: number;
  /** Seconds an unknown MAC keeps its place after its last frame (the pool's lease time). Default 600. */
  readonly holdSeconds?: number;
}

/** The guest bridge's table for `vms` (sorted by name), `unassigned` the DHCP pool of unknown devices. */
export function compilePorts(vms: readonly Vm[], unassigned: UnassignedPool | undefined): TableSpec {
  const ids = portIds(vms);
  const ported = vms.filter((vm) => vm.port !== undefined);
  const portless = vms.filter((vm) => vm.port === undefined);
  // its own address, and 0.0.0.0: the probe (RFC 5227) before it takes its lease
  const arpOf = (vm: Vm): NftValue[] => {
    const mac = normaliseMac(vm.mac);
    return [vm.ipv4, '0.0.0.0'].map((ip) => ({ concat: [mac, mac, ip] }));
  };
  const sets: SetSpec[] = [
    {
      name: 'port_marks',
      type: 'ifname',
      map: 'mark',
      flags: [],
      elements: ported.map((vm) => [vm.port!, vmMark(vm, ids)] as unknown as NftValue),
      comment: "port → its VM's mark",
    },
    {
      name: 'port_mac_marks',
      type: ['ifname', 'ether_addr'],
      map: 'mark',
      flags: [],
      elements: ported.map(
        (vm) => [{ concat: [vm.port!, normaliseMac(vm.mac)] }, vmMark(vm, ids)] as unknown as NftValue,
      ),
      comment: "port . its VM's MAC → the VM's mark",
    },
    {
      name: 'port_macs',
      type: ['ifname', 'ether_addr'],
      flags: [],
      elements: ported.map((vm) => ({ concat: [vm.port!, normaliseMac(vm.mac)] })),
      comment: 'port . MAC of VMs with a port',
    },
    {
      name: 'bound_macs',
      type: 'ether_addr',
      flags: [],
      elements: ported.map((vm) => normaliseMac(vm.mac)),
      comment: 'MACs of VMs with a port',
    },
    {
      name: 'ports',
      type: 'ifname',
      flags: [],
      elements: ported.map((vm) => vm.port!),
      comment: 'ports that have a VM',
    },
    {
      name: 'port_ips',
      type: ['ifname', 'ipv4_addr'],
      flags: [],
      elements: ported.flatMap((vm) => [vm.ipv4, '0.0.0.0'].map((ip) => ({ concat: [vm.port!, ip] }))),
      comment: 'port . ARP sender IPv4 of VMs with a port',
    },
    {
      name: 'arp_any_port',
      type: ['ether_addr', 'ether_addr', 'ipv4_addr'],
      flags: [],
      elements: portless.flatMap(arpOf),
      comment: 'MAC . ARP sender MAC . sender IPv4 of VMs without a port',
    },
    {
      name: 'macs',
      type: 'ether_addr',
      flags: [],
      elements: vms.map((vm) => normaliseMac(vm.mac)),
      comment: 'registered MACs',
    },
  ];
  // unknown devices: a set of the MACs in use per port of a VM, one for all other
  // ports; full, a new MAC is dropped (the failed update breaks the rule)
  const perPort = unassigned?.perPort ?? UNKNOWN_PER_PORT;
  const hold = unassigned?.holdSeconds ?? UNKNOWN_HOLD_SECONDS;
  const unknownChains = [...ported.map((vm) => `unknown_${ids.get(vm.name)!}`), 'unknown_other'];
  for (const name of unknownChains)
    sets.push({
      name,
      type: 'ether_addr',
      flags: ['timeout'],
      elements: [],
      dynamic: true,
      size: perPort,
      comment: `unknown MACs in use on ${name === 'unknown_other' ? 'the ports without a VM' : 'a port'}`,
    });
  sets.push({
    name: 'port_unknown',
    type: 'ifname',
    map: 'verdict',
    flags: [],
    elements: ported.map(
      (vm) => [vm.port!, { goto: { target: `unknown_${ids.get(vm.name)!}` } }] as unknown as NftValue,
    ),
    comment: "port → its unknown devices' chain",
  });
  const pool: NftValue[] = ['0.0.0.0'];
  if (unassigned) pool.push({ range: [unassigned.from, unassigned.to] });
  const ether = (field: string): NftValue => payload('ether', field);
  const arp = (field: string): NftValue => payload('arp', field);
  const rules = [
    // the common frame first, in one look-up: IP from a VM's MAC on the VM's own port
    // (untagged, its MAC where it belongs, registered: none of the checks below applies)
    [
      m(ether('type'), { set: ['ip', 'ip6'] }),
      {
        mangle: {
          key: meta('mark'),
          value: { map: { key: { concat: [meta('iifname'), ether('saddr')] }, data: '@port_mac_marks' } },
        },
      },
      ACCEPT,
    ],
    [m(ether('type'), { set: ['8021q', '8021ad'] }), counter('vlan_dropped'), DROP],
    [
      m(ether('saddr'), '@bound_macs'),
      m({ concat: [meta('iifname'), ether('saddr')] }, '@port_macs', '!='),
      counter('port_mac_dropped'),
      DROP,
    ],
    // one look-up a frame of a registered MAC; the unknown ones go to their port's set
    [m(ether('saddr'), '@macs', '!='), { jump: { target: 'unknown' } }],
    [{ mangle: { key: meta('mark'), value: { map: { key: meta('iifname'), data: '@port_marks' } } } }],
    [m(ether('type'), 'arp', '!='), ACCEPT],
    [m({ concat: [meta('iifname'), arp('saddr ip')] }, '@port_ips'), ACCEPT],
    [m({ concat: [ether('saddr'), arp('saddr ether'), arp('saddr ip')] }, '@arp_any_port'), ACCEPT],
    // unknown devices: the pool's addresses (and probes), with MACs no VM has
    [
      m(ether('saddr'), '@macs', '!='),
      m(arp('saddr ether'), '@macs', '!='),
      m(arp('saddr ip'), { set: pool }),
      ACCEPT,
    ],
    [counter('arp_dropped'), DROP],
  ];
  return {
    family: 'bridge',
    name: TABLE,
    counters: ['vlan_dropped', 'port_mac_dropped', 'arp_dropped', 'unknown_mac_limited'],
    sets,
    chains: [
      {
        name: 'ports',
        base: { type: 'filter', hook: 'prerouting', prio: PRIO.raw, policy: 'accept' },
        rules,
      },
      {
        name: 'unknown',
        rules: [
          [{ vmap: { key: meta('iifname'), data: '@port_unknown' } }],
          [{ goto: { target: 'unknown_other' } }],
        ],
      },
      ...unknownChains.map((name) => ({
        name,
        rules: [
          [
            {
              set: { op: 'update', elem: { elem: { val: ether('saddr'), timeout: hold } }, set: `@${name}` },
            },
            { return: null },
          ] as NftStatement[],
          [counter('unknown_mac_limited'), DROP],
        ],
      })),
    ],
  };
}

/**
 * The guest bridge's checks of MACs inside frames, a table of its own (`bridge
 * portcullis_frames`) in nft's text syntax: nft 1.0.6's JSON cannot declare a set keyed
 * by raw payloads (`typeof`). At the bridge's prerouting just after the ports chain:
 *
 * - dnsmasq leases by the client hardware address inside DHCP (BOOTP `chaddr`, at
 *   offset 28 of the UDP payload), which no MAC check sees: a DHCP request (udp/67)
 *   whose `chaddr` is not the frame's source MAC is dropped (`chaddr_dropped`);
 * - ARP whose sender MAC is not the frame's source MAC is dropped (`arp_sha_dropped`):
 *   an unknown device (or anyone) cannot have the security VM learn another MAC for a
 *   pool address than the one it sends from.
 *
 * The equality of two fields is a lookup: the frame's `source . source` goes into a
 * short-lived set, then `source . field` must be in it. Independent of the policy.
 */
export function frameChecksTable(): TextTable {
  const src = '@ll,48,48';
  // 36 bytes into the transport header: 8 of UDP, 28 of BOOTP before chaddr
  const chaddr = '@th,288,48';
  // 8 bytes into ARP (Ethernet/IPv4): the sender hardware address
  const sha = '@nh,64,48';
  return {
    family: 'bridge',
    name: `${TABLE}_frames`,
    counters: ['chaddr_dropped', 'arp_sha_dropped'],
    body: [
      `set self { typeof ${src} . ${chaddr}; size 65536; flags timeout; timeout 5s; }`,
      'counter chaddr_dropped { }',
      'counter arp_sha_dropped { }',
      'chain frames {',
      `  type filter hook prerouting priority ${PRIO.raw + 1}; policy accept;`,
      // the common frame (IP but not UDP: TCP, ICMP) leaves at once: only UDP and ARP
      // have checks here (ARP fails the ether type, whatever a kernel makes of its l4proto)
      '  ether type { ip, ip6 } meta l4proto != udp accept',
      `  udp dport 67 update @self { ${src} . ${src} }`,
      `  udp dport 67 ${src} . ${chaddr} != @self counter name chaddr_dropped drop`,
      `  ether type arp update @self { ${src} . ${src} }`,
      `  ether type arp ${src} . ${sha} != @self counter name arp_sha_dropped drop`,
      '}',
    ].join('\n'),
  };
}
