import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { cpuCgroupOf, openIdleCpu } from './idle-cpu.js';

/**
 * The idle CPU class on the real kernel: two busy loops in sessions of their own (so in
 * autogroups of their own, as the service and its Suricata are) share one CPU. Nice 19
 * on one of them changes nothing between groups; the idle class leaves it only the time
 * the other does not want. Root and a cgroup v1 cpu controller with `cpu.idle`.
 */
const idle = process.getuid?.() === 0 ? await openIdleCpu() : undefined;
const skip =
  process.getuid?.() !== 0
    ? 'needs root'
    : idle === undefined
      ? 'no cgroup v1 cpu controller with cpu.idle on this machine'
      : undefined;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** CPU ticks (user + system) of a process so far. */
function ticks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** Ticks each process got over `ms`. */
async function share(pids: number[], ms = 1500): Promise<number[]> {
  const a = pids.map(ticks);
  await sleep(ms);
  return pids.map((p, i) => ticks(p) - a[i]!);
}

describe.skipIf(skip)(`the idle CPU class, real kernel${skip ? ` (skipped: ${skip})` : ''}`, () => {
  const loops: ChildProcess[] = [];
  afterEach(() => {
    for (const l of loops.splice(0)) l.kill('SIGKILL');
  });

  it('gives a thread only the time others leave, where nice 19 does not across sessions', async () => {
    for (let i = 0; i < 2; i++)
      loops.push(
        spawn('taskset', ['-c', '0', 'sh', '-c', 'while :; do :; done'], { detached: true, stdio: 'ignore' }),
      );
    const [a, b] = loops.map((l) => l.pid!) as [number, number];
    await sleep(300);
    const even = await share([a, b]);
    setPriority(b, 19);
    const niced = await share([a, b]);
    const before = cpuCgroupOf(readFileSync(`/proc/${b}/task/${b}/cgroup`, 'utf8'));
    const restore = await idle!.enter(b);
    const idled = await share([a, b]);
    await restore();
    const after = cpuCgroupOf(readFileSync(`/proc/${b}/task/${b}/cgroup`, 'utf8'));
    console.log(
      `[idle-cpu] ticks a/b: equal ${even.join('/')}, b at nice 19 ${niced.join('/')}, b idle ${idled.join('/')}`,
    );
    // the control: two loops on one CPU share it
    expect(even[1]! / even[0]!).toBeGreaterThan(0.5);
    expect(even[1]! / even[0]!).toBeLessThan(2);
    // why nice is not enough: with autogroups, each session's group gets its share
    if (readFileSync('/proc/sys/kernel/sched_autogroup_enabled', 'utf8').trim() === '1')
      expect(niced[1]! / niced[0]!).toBeGreaterThan(0.5);
    // idle: almost nothing while the other wants the CPU
    expect(idled[1]!).toBeLessThan(0.1 * idled[0]!);
    expect(after).toBe(before);
  });
});
