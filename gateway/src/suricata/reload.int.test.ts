import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { getPriority } from 'node:os';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReloadPriority } from './reload.js';

/**
 * `reloadPriority` on the real kernel, from a process of another user than the thread's,
 * as in the appliance (the service is `portcullis`, Suricata `suricata`): without
 * CAP_SYS_NICE the kernel refuses, with it (portcullis.service grants it) it allows, and
 * asking changes nothing. The asking process is Node itself under `setpriv` (util-linux),
 * loading reload.ts as it is (Node strips its types). Root.
 */
const skip = process.getuid?.() !== 0 ? 'needs root (setpriv switches users)' : undefined;
const RELOAD = fileURLToPath(new URL('./reload.ts', import.meta.url));

/** `reloadPriority(pid)` asked by uid 1 (daemon), with `caps` as its ambient capabilities. */
function askAsAnotherUser(pid: number, caps: string[]): Promise<ReloadPriority> {
  const capArgs = caps.length ? [`--inh-caps=${caps.join(',')}`, `--ambient-caps=${caps.join(',')}`] : [];
  const script = `import(${JSON.stringify(RELOAD)}).then((m) => console.log(JSON.stringify(m.reloadPriority(${pid}))))`;
  return new Promise((resolve, reject) =>
    execFile(
      'setpriv',
      ['--reuid=1', '--regid=1', '--clear-groups', ...capArgs, process.execPath, '-e', script],
      { encoding: 'utf8', timeout: 30_000 },
      (err, stdout, stderr) =>
        err ? reject(new Error(`setpriv: ${stderr || err.message}`)) : resolve(JSON.parse(stdout)),
    ),
  );
}

describe.skipIf(skip)(`reloadPriority, real kernel${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let thread: ChildProcess;
  beforeAll(() => {
    // Suricata's stand-in: a root process at nice 5
    thread = spawn('nice', ['-n', '5', 'sleep', '120'], { stdio: 'ignore' });
  });
  afterAll(() => {
    thread.kill('SIGKILL');
  });

  it("refuses another user's renice without CAP_SYS_NICE and allows it with it, changing nothing", async () => {
    await new Promise((r) => setTimeout(r, 200));
    const pid = thread.pid!;
    expect(getPriority(pid)).toBe(5);
    const without = await askAsAnotherUser(pid, []);
    expect(without.nice).toBe(false);
    expect(without.reason).toMatch(/not permitted \(EPERM\).*CAP_SYS_NICE/);
    // the control: the same question from the same user with the capability
    const withCap = await askAsAnotherUser(pid, ['+sys_nice']);
    expect(withCap).toMatchObject({ nice: true });
    expect(getPriority(pid)).toBe(5);
  });
});
