import type { ClientView } from '../parental/client-policy.js';
import type { Vm } from '../policy/model.js';
import { inIpv4Range, type Ipv4Range } from '../policy/net.js';
import type { ClientPolicy } from './model.js';

/** The client name DNS uses for devices from the unassigned DHCP pool. */
export const UNASSIGNED = 'unassigned';

/** Who is behind a source address: a VM with its DNS policy, or an unassigned device (no VM). */
export interface Identity {
  readonly vm?: Vm;
  readonly policy: ClientPolicy;
  /** Why the VM is blocked as a whole, in words for the block page; absent when it is not. */
  readonly blocked?: string;
}

export interface ClientDirectoryOptions {
  /** The DHCP pool for unknown MACs: its devices get a paused policy (block page only). Default none. */
  readonly unassigned?: Ipv4Range;
}

/**
 * The guests the DNS filter and the block page answer, by source address and by VM
 * name: the views of the policy in force (`clientPolicies`), replaced whole by
 * `update()`. Lookups are map reads, and return the same object until the next
 * update (the DNS filter memoises compiled policies per object). No I/O.
 */
export class ClientDirectory {
  readonly #unassigned: Ipv4Range | undefined;
  readonly #unassignedIdentity: Identity = { policy: { client: UNASSIGNED, paused: true } };
  #byIp: ReadonlyMap<string, ClientView> = new Map();
  #byVm: ReadonlyMap<string, ClientView> = new Map();

  constructor(options: ClientDirectoryOptions = {}) {
    this.#unassigned = options.unassigned;
  }

  /** Put new views in force, keyed by VM address (as `clientPolicies` returns them). */
  update(views: ReadonlyMap<string, ClientView>): void {
    this.#byIp = views;
    this.#byVm = new Map([...views.values()].map((v) => [v.vm.name, v]));
  }

  /** Who asks from `ip`: a VM, an unassigned device, or undefined for a stranger. */
  identify(ip: string): Identity | undefined {
    const view = this.#byIp.get(ip);
    if (view) return view;
    if (this.#unassigned && inIpv4Range(ip, this.#unassigned)) return this.#unassignedIdentity;
    return undefined;
  }

  /** The view of the VM named `name`, if the policy has it. */
  vm(name: string): ClientView | undefined {
    return this.#byVm.get(name);
  }
}
