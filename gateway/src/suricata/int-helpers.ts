import { spawn, spawnSync } from 'node:child_process';
import { nodeSpawner, type Spawner } from './supervisor.js';

/**
 * For the root-only tests beside this file (*.int.test.ts): scratch network
 * namespaces and commands run in them. Not used by the service.
 */

/** Whether this process is root (the real-Suricata tests need it). */
export const IS_ROOT = process.getuid?.() === 0;

/** Whether `command` runs here. */
export function have(command: string, args: readonly string[] = ['--version']): boolean {
  const r = spawnSync(command, [...args], { stdio: 'ignore' });
  return r.error === undefined;
}

/** Why the real-Suricata tests cannot run here, or undefined when they can. */
export function whyNotReal(extra: readonly string[] = []): string | undefined {
  if (!IS_ROOT) return 'needs root (network namespaces, NFQUEUE)';
  for (const cmd of ['ip', 'suricata', ...extra]) if (!have(cmd, ['-V'])) return `needs ${cmd}`;
  return undefined;
}

/** Run a command to completion; throw with its stderr when it fails. */
export function run(command: string, args: readonly string[], input?: string): string {
  const r = spawnSync(command, [...args], { encoding: 'utf8', input, timeout: 30_000 });
  if (r.error) throw r.error;
  if (r.status !== 0)
    throw new Error(`${command} ${args.join(' ')} failed (${r.status}): ${r.stderr.trim()}`);
  return r.stdout;
}

/** Where a process is stuck, from /proc (comm, state, kernel wait channel and stack), for a timeout's message. */
export function whereStuck(pid: number | undefined): string {
  if (pid === undefined) return 'no pid';
  const read = (f: string): string => {
    const r = spawnSync('cat', [`/proc/${pid}/${f}`], { encoding: 'utf8' });
    return (r.stdout ?? '').trim();
  };
  const state = /^State:\s*(.*)$/m.exec(read('status'))?.[1] ?? '?';
  return `pid ${pid} (${read('comm')}) state ${state}, wchan ${read('wchan') || '?'}, stack: ${read('stack').replace(/\n/g, ' | ') || '?'}`;
}

/**
 * Run a command, collecting stdout, without blocking the event loop. After timeoutMs it is
 * killed, and the error says where it was stuck (see whereStuck).
 */
export function runAsync(command: string, args: readonly string[], timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, [...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let stuck: string | undefined;
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const timer = setTimeout(() => {
      stuck = whereStuck(child.pid);
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else if (stuck !== undefined)
        reject(
          new Error(
            `${command} ${args.join(' ')} timed out after ${timeoutMs} ms (${stuck}); stdout: ${out.trim()}; stderr: ${err.trim()}`,
          ),
        );
      else reject(new Error(`${command} ${args.join(' ')} failed (${code}): ${err.trim()}`));
    });
  });
}

/** A network namespace this test created; delete() kills what runs in it and removes it. */
export class ScratchNetns {
  private constructor(readonly name: string) {}

  /** Create `<prefix>-<pid>`, with loopback up. */
  static create(prefix: string): ScratchNetns {
    const name = `${prefix}-${process.pid}`;
    spawnSync('ip', ['netns', 'del', name], { stdio: 'ignore' }); // left by a crashed run of this test
    run('ip', ['netns', 'add', name]);
    const ns = new ScratchNetns(name);
    ns.exec('ip', 'link', 'set', 'lo', 'up');
    return ns;
  }

  /** Run a command in the namespace; its stdout. */
  exec(command: string, ...args: string[]): string {
    return run('ip', ['netns', 'exec', this.name, command, ...args]);
  }

  /** Run a command in the namespace with `input` on stdin. */
  execInput(input: string, command: string, ...args: string[]): string {
    return run('ip', ['netns', 'exec', this.name, command, ...args], input);
  }

  /** `ip netns exec` replaces itself with the command: the child's pid is the command's. */
  spawner(): Spawner {
    return {
      spawn: (command, args) => nodeSpawner.spawn('ip', ['netns', 'exec', this.name, command, ...args]),
    };
  }

  /** Kill the processes still in the namespace (all started by this test), then delete it. */
  delete(): void {
    const pids = spawnSync('ip', ['netns', 'pids', this.name], { encoding: 'utf8' }).stdout ?? '';
    for (const pid of pids.split(/\s+/).filter(Boolean).map(Number)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    spawnSync('ip', ['netns', 'del', this.name], { stdio: 'ignore' });
  }
}

/** Connect two namespaces with a veth pair and give each end an address (`a.b.c.d/len`). */
export function link(
  a: ScratchNetns,
  aIf: string,
  aAddr: string,
  b: ScratchNetns,
  bIf: string,
  bAddr: string,
): void {
  run('ip', ['link', 'add', aIf, 'netns', a.name, 'type', 'veth', 'peer', 'name', bIf, 'netns', b.name]);
  a.exec('ip', 'addr', 'add', aAddr, 'dev', aIf);
  a.exec('ip', 'link', 'set', aIf, 'up');
  b.exec('ip', 'addr', 'add', bAddr, 'dev', bIf);
  b.exec('ip', 'link', 'set', bIf, 'up');
}
