import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CgroupIdleCpu,
  cpuCgroupOf,
  cpuMountOf,
  IDLE_CGROUP,
  openIdleCpu,
  parseMountinfo,
} from './idle-cpu.js';

describe('finding the cpu controller', () => {
  it('takes the cgroup v1 mount whose super options hold cpu', () => {
    const mountinfo = [
      '24 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw',
      '33 25 0:28 / /sys/fs/cgroup/memory rw,relatime shared:12 - cgroup cgroup rw,memory',
      '34 25 0:29 / /sys/fs/cgroup/cpuset rw,relatime shared:13 - cgroup cgroup rw,cpuset',
      '35 25 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct',
    ].join('\n');
    expect(cpuMountOf(mountinfo)).toBe('/sys/fs/cgroup/cpu,cpuacct');
  });

  it('finds none under cgroup v2 alone (cpuset is not cpu)', () => {
    const mountinfo = [
      '25 24 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate',
      '34 25 0:29 / /sys/fs/cgroup/cpuset rw,relatime shared:13 - cgroup cgroup rw,cpuset',
    ].join('\n');
    expect(cpuMountOf(mountinfo)).toBeUndefined();
  });

  it('parses mountinfo lines, optional fields and escaped spaces included', () => {
    expect(
      parseMountinfo(
        '36 25 0:31 / /mnt/a\\040b rw,relatime shared:15 master:2 - cgroup cgroup rw,cpu\nnot a mount line\n',
      ),
    ).toEqual([{ mountPoint: '/mnt/a b', fstype: 'cgroup', superOptions: ['rw', 'cpu'] }]);
  });

  it("reads a thread's cpu cgroup, whichever controllers share its hierarchy", () => {
    expect(cpuCgroupOf('5:memory:/lab\n4:cpu,cpuacct:/user.slice\n0::/user.slice\n')).toBe('/user.slice');
    expect(cpuCgroupOf('3:cpu:/\n2:cpuacct:/x\n')).toBe('/');
    expect(cpuCgroupOf('0::/system.slice/portcullis.service\n')).toBeUndefined();
  });
});

describe('CgroupIdleCpu (a cgroupfs and /proc stand-in in a folder)', () => {
  let dir: string;
  let mount: string;
  let proc: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-idle-'));
    mount = join(dir, 'cpu');
    proc = join(dir, 'proc');
    await mkdir(join(mount, 'lab'), { recursive: true });
    await mkdir(join(proc, '42', 'task', '42'), { recursive: true });
    await writeFile(join(proc, '42', 'task', '42', 'cgroup'), '7:memory:/m\n4:cpu,cpuacct:/lab\n');
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('moves the thread into an idle cgroup and back into the cgroup it came from', async () => {
    const restore = await new CgroupIdleCpu({ mount, proc }).enter(42);
    expect(await readFile(join(mount, IDLE_CGROUP, 'cpu.idle'), 'utf8')).toBe('1');
    expect(await readFile(join(mount, IDLE_CGROUP, 'tasks'), 'utf8')).toBe('42');
    await restore();
    expect(await readFile(join(mount, 'lab', 'tasks'), 'utf8')).toBe('42');
  });

  it('a thread that is gone with its cgroup is not an error on the way back', async () => {
    const restore = await new CgroupIdleCpu({ mount, proc }).enter(42);
    await rm(join(mount, 'lab'), { recursive: true });
    await expect(restore()).resolves.toBeUndefined();
  });

  it('refuses a thread it cannot find, naming it', async () => {
    await expect(new CgroupIdleCpu({ mount, proc }).enter(43)).rejects.toThrow(/43/);
  });

  it('openIdleCpu offers nothing without a cpu controller mount', async () => {
    await mkdir(join(proc, 'self'), { recursive: true });
    await writeFile(join(proc, 'self', 'mountinfo'), '25 24 0:23 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n');
    expect(await openIdleCpu(proc)).toBeUndefined();
  });
});
