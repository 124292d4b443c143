import { execFile } from 'node:child_process';
import { PortcullisError } from '../errors.js';

/** A registered guest as the LAN's neighbour and bridge tables hold it. */
export interface GuestBinding {
  readonly ipv4: string;
  /** Lower-case MAC. */
  readonly mac: string;
  /** The guest's port on the LAN bridge, when it has one. */
  readonly port?: string;
}

/**
 * The security VM's neighbour (ARP) and bridge forwarding entries of the registered
 * guests: permanent, so that no ARP reply or forged frame can move them.
 */
export interface Neighbours {
  /**
   * Make the permanent entries those of `guests` (entries already right are left as
   * they are): a permanent neighbour entry each on the LAN interface, and a static forwarding entry on its port for each guest with
   * one (so that frames to it never flood to other ports). Permanent neighbour entries
   * of other addresses are removed. Resolves with what could not be set (a port that
   * does not exist, …), one line each; an empty list when everything was set.
   */
  set(guests: readonly GuestBinding[]): Promise<string[]>;
}

/** One entry of `ip -j neigh show`. */
export interface NeighbourEntry {
  readonly dst: string;
  readonly lladdr?: string;
  readonly state?: readonly string[];
}

/** One entry of `bridge -j fdb show`. */
export interface FdbEntry {
  readonly mac: string;
  readonly ifname?: string;
  readonly state?: string;
  readonly flags?: readonly string[];
  readonly master?: string;
}

/**
 * The `ip -batch` and `bridge -batch` lines that turn the current permanent entries
 * into those of `guests` on `lan`; none for entries that are right already. Pure.
 */
export function neighbourCommands(
  lan: string,
  guests: readonly GuestBinding[],
  current: { readonly neighbours: readonly NeighbourEntry[]; readonly fdb: readonly FdbEntry[] },
): { ip: string[]; bridge: string[] } {
  const ip: string[] = [];
  const bridge: string[] = [];
  const wanted = new Map(guests.map((g) => [g.ipv4, g.mac.toLowerCase()]));
  const pinned = new Set<string>();
  for (const n of current.neighbours) {
    if (!n.state?.includes('PERMANENT') || n.dst.includes(':')) continue;
    if (wanted.get(n.dst) !== n.lladdr?.toLowerCase()) ip.push(`neigh del ${n.dst} dev ${lan}`);
    else pinned.add(n.dst);
  }
  for (const [addr, mac] of wanted)
    if (!pinned.has(addr)) ip.push(`neigh replace ${addr} lladdr ${mac} dev ${lan} nud permanent`);
  const ports = new Map(guests.filter((g) => g.port).map((g) => [g.mac.toLowerCase(), g.port!]));
  const placed = new Set<string>();
  for (const e of current.fdb) {
    // our entries: static, on a port of the LAN bridge (not the bridge's own addresses)
    if (e.state !== 'static' || e.master !== lan || !e.ifname || e.ifname === lan) continue;
    const mac = e.mac.toLowerCase();
    if (ports.get(mac) !== e.ifname || !e.flags?.includes('sticky'))
      bridge.push(`fdb del ${e.mac} dev ${e.ifname} master`);
    else placed.add(mac);
  }
  // sticky: learning never moves it to another port (a static entry alone it would)
  for (const [mac, port] of ports)
    if (!placed.has(mac)) bridge.push(`fdb replace ${mac} dev ${port} master static sticky`);
  return { ip, bridge };
}

function exec(cmd: string, args: string[], input?: string): Promise<{ out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { maxBuffer: 16 << 20 }, (error, out, err) => {
      // with -force, batch errors are reported on stderr and the exit code is 1
      if (error && (error as { code?: unknown }).code === 'ENOENT')
        reject(new PortcullisError('SPAWN_FAILED', `${cmd} is not installed`, { cause: error }));
      else resolve({ out, err });
    });
    // a command that exits without reading its input must not crash the service
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input ?? '');
  });
}

/** iproute2's `ip neigh` and `bridge fdb` on the LAN interface (a bridge with the guests' ports). */
export class IpNeighbours implements Neighbours {
  readonly #lan: string;

  /** @param lan the interface facing the guests (the guest bridge). */
  constructor(lan: string) {
    this.#lan = lan;
  }

  async set(guests: readonly GuestBinding[]): Promise<string[]> {
    const lan = this.#lan;
    const parse = <T>(json: string): T[] => (json.trim() === '' ? [] : (JSON.parse(json) as T[]));
    const neighbours = parse<NeighbourEntry>(
      (await exec('ip', ['-4', '-j', 'neigh', 'show', 'dev', lan, 'nud', 'permanent'])).out,
    );
    const isBridge = (await exec('ip', ['-d', '-j', 'link', 'show', 'dev', lan])).out.includes(
      '"info_kind":"bridge"',
    );
    const fdb = isBridge ? parse<FdbEntry>((await exec('bridge', ['-j', 'fdb', 'show', 'br', lan])).out) : [];
    const cmds = neighbourCommands(lan, isBridge ? guests : guests.map(({ ipv4, mac }) => ({ ipv4, mac })), {
      neighbours,
      fdb,
    });
    const problems: string[] = [];
    const batch = async (cmd: string, lines: string[]): Promise<void> => {
      if (lines.length === 0) return;
      const { err } = await exec(cmd, ['-force', '-batch', '-'], `${lines.join('\n')}\n`);
      for (const line of err.split('\n')) if (line.trim() !== '') problems.push(`${cmd}: ${line.trim()}`);
    };
    await batch('ip', cmds.ip);
    await batch('bridge', cmds.bridge);
    return problems;
  }
}
