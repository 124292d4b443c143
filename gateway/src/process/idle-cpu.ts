import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * A CPU class for background work of one thread: it runs only on time no other thread
 * wants. Used for Suricata's rule reload (suricata/reload.ts): a nice value orders threads
 * only inside their scheduling group, and with autogroups (a group per session, the
 * default of Debian's kernel) the reloading thread alone in its group gets a whole group's
 * share against each other session. A cgroup with `cpu.idle` set is below every group that
 * is not idle, and a waking thread of another group preempts it at once.
 *
 * Implemented for the cgroup v1 cpu controller, where a single thread may change cgroup
 * (its id into `tasks`). Under cgroup v2 a thread can only move inside a threaded subtree
 * of its process's cgroup, which the service does not own under systemd
 * (`ProtectControlGroups`): there `openIdleCpu` finds none and the nice value is all.
 */
export interface IdleCpu {
  /**
   * Put thread `tid` in the idle class. Resolves to what puts it back where it was (a
   * thread that is gone by then is not an error). Rejects when the thread cannot be moved.
   */
  enter(tid: number): Promise<() => Promise<void>>;
}

/** The cgroup the service's idle class is, under the cpu controller's mount. */
export const IDLE_CGROUP = 'portcullis-idle';

/** A mount of /proc/<pid>/mountinfo: where, what file system, its super options. */
export interface Mount {
  readonly mountPoint: string;
  readonly fstype: string;
  readonly superOptions: readonly string[];
}

/** The mounts of a /proc/<pid>/mountinfo text. Pure. */
export function parseMountinfo(mountinfo: string): Mount[] {
  const out: Mount[] = [];
  for (const line of mountinfo.split('\n')) {
    // "35 25 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct"
    const [left, right] = line.split(' - ');
    const mountPoint = left?.split(' ')[4];
    const [fstype, , superOptions = ''] = right?.split(' ') ?? [];
    if (mountPoint && fstype)
      out.push({
        mountPoint: mountPoint.replace(/\\040/g, ' '),
        fstype,
        superOptions: superOptions.split(','),
      });
  }
  return out;
}

/**
 * The cgroup v1 hierarchy that has the cpu controller, from /proc/self/mountinfo: its mount
 * point, or undefined (cgroup v2 only, or no cpu controller). Pure.
 */
export function cpuMountOf(mountinfo: string): string | undefined {
  return parseMountinfo(mountinfo).find((m) => m.fstype === 'cgroup' && m.superOptions.includes('cpu'))
    ?.mountPoint;
}

/**
 * The path of a thread's cgroup in the cpu controller's v1 hierarchy, from
 * /proc/<pid>/task/<tid>/cgroup ("4:cpu,cpuacct:/user.slice"), or undefined. Pure.
 */
export function cpuCgroupOf(procCgroup: string): string | undefined {
  for (const line of procCgroup.split('\n')) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line.trim());
    if (m && m[1]!.split(',').includes('cpu')) return m[2];
  }
  return undefined;
}

export interface CgroupIdleCpuOptions {
  /** The cpu controller's v1 mount (`cpuMountOf`). */
  readonly mount: string;
  /** Where /proc is (tests). Default /proc. */
  readonly proc?: string;
}

/** The idle class as a cgroup v1 cpu cgroup with `cpu.idle` 1 (kernel 5.15 or later). */
export class CgroupIdleCpu implements IdleCpu {
  readonly #mount: string;
  readonly #proc: string;

  constructor(options: CgroupIdleCpuOptions) {
    this.#mount = options.mount;
    this.#proc = options.proc ?? '/proc';
  }

  async enter(tid: number): Promise<() => Promise<void>> {
    const from = cpuCgroupOf(
      await readFile(join(this.#proc, String(tid), 'task', String(tid), 'cgroup'), 'utf8'),
    );
    if (from === undefined) throw new Error(`thread ${tid} is in no cgroup of the cpu controller`);
    const idle = join(this.#mount, IDLE_CGROUP);
    await mkdir(idle, { recursive: true });
    await writeFile(join(idle, 'cpu.idle'), '1');
    await writeFile(join(idle, 'tasks'), String(tid));
    return async () => {
      try {
        await writeFile(join(this.#mount, from, 'tasks'), String(tid));
      } catch (err) {
        // the thread is gone (ESRCH), or its cgroup is (ENOENT): nothing to put back
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ESRCH' && code !== 'ENOENT') throw err;
      }
      // the last one out removes the cgroup; busy (another thread in it) or gone is fine
      await rmdir(idle).catch(() => undefined);
    };
  }
}

/**
 * The idle class this machine offers the service: a cgroup v1 cpu controller whose
 * cgroups have `cpu.idle`, or undefined.
 */
export async function openIdleCpu(proc = '/proc'): Promise<IdleCpu | undefined> {
  const mount = cpuMountOf(await readFile(join(proc, 'self', 'mountinfo'), 'utf8').catch(() => ''));
  if (mount === undefined) return undefined;
  const hasIdle = await readFile(join(mount, 'cpu.idle'), 'utf8').then(
    () => true,
    () => false,
  );
  return hasIdle ? new CgroupIdleCpu({ mount, proc }) : undefined;
}
