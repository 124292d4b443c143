import { MARK } from '../../nft/marks.js';
import type { NftStatement, QueueSettings, SetSpec } from '../../nft/types.js';
import type { KernelWindow } from '../compile.js';
import type { Profile, Vm } from '../model.js';
import type { GatewayNetwork } from '../network.js';
import type { ServiceWindows } from '../schedule.js';
import { ACCEPT, m, meta } from './statements.js';

/** What one VM's chains are compiled with: the inputs, and where its sets and to-guests rules go. */
export interface VmContext {
  readonly network: GatewayNetwork;
  readonly now: Date;
  readonly byName: ReadonlyMap<string, Vm>;
  readonly sets: SetSpec[];
  readonly windows: readonly KernelWindow[];
  readonly serviceWindows: readonly ServiceWindows[];
  readonly budgetUntil: Date | undefined;
  readonly toGuests: NftStatement[][];
  readonly queue: QueueSettings | undefined;
  /** The profile in force for the VM (quarantine's while quarantined). */
  readonly profile: Profile;
}

/** `meta mark set meta mark | queue bit`: keeps the other bits (the bypass bit above all). */
export function markQueue(profile: Profile): NftStatement {
  const bit = profile.ips.failure === 'fail-open' ? MARK.queueOpen : MARK.queueClosed;
  return { mangle: { key: meta('mark'), value: { '|': [meta('mark'), bit] } } };
}

/**
 * The rules that accept what `match` matches, through Suricata when the profile's IPS
 * mode is `ips`: with the nft queue statement, flows Suricata bypassed (the bit in the
 * conntrack mark) are accepted first and the rest is queued (fail-open: `bypass` when
 * Suricata is not listening); with xtables, the packet is marked and accepted here and
 * the NFQUEUE target of the compat layer queues it by the mark.
 */
export function accepting(match: NftStatement[], profile: Profile, ctx: VmContext): NftStatement[][] {
  if (!ctx.queue || profile.ips.mode !== 'ips') return [[...match, ACCEPT]];
  if (ctx.queue.kind === 'xt') return [[...match, markQueue(profile), ACCEPT]];
  const open = profile.ips.failure === 'fail-open';
  return [
    [...match, m({ '&': [{ ct: { key: 'mark' } }, MARK.bypass] }, 0, '!='), ACCEPT],
    [...match, { queue: { num: ctx.queue.num, ...(open ? { flags: 'bypass' } : {}) } }],
  ];
}
