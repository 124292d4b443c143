import { EventEmitter } from 'node:events';
import { PassThrough } from 'node:stream';
import type { ChildProcessLike, Spawner } from './supervisor.js';

/** Fake children for the supervisor tests and its users' tests. Not used by the service. */

/** A child process: exits when sent one of `exitOn`, or when the test says so. */
export class FakeChild extends EventEmitter implements ChildProcessLike {
  readonly stdout = new PassThrough();
  readonly stderr = new PassThrough();
  readonly signals: NodeJS.Signals[] = [];
  exited = false;

  constructor(
    readonly pid: number | undefined,
    readonly exitOn: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGKILL'],
  ) {
    super();
  }

  kill(signal: NodeJS.Signals): boolean {
    this.signals.push(signal);
    if (this.exitOn.includes(signal)) queueMicrotask(() => this.exit(null, signal));
    return true;
  }

  exit(code: number | null, signal: NodeJS.Signals | null = null): void {
    if (this.exited) return;
    this.exited = true;
    this.emit('exit', code, signal);
  }
}

export class FakeSpawner implements Spawner {
  readonly children: FakeChild[] = [];
  readonly calls: { command: string; args: readonly string[] }[] = [];
  /** @param firstPid the pid of the first default child; the next ones count up from it */
  constructor(readonly firstPid = 100) {}

  /** How the next child behaves; default: a live process that exits on SIGTERM. */
  next: () => FakeChild = () => new FakeChild(this.firstPid + this.children.length);

  spawn(command: string, args: readonly string[]): ChildProcessLike {
    this.calls.push({ command, args });
    const child = this.next();
    this.children.push(child);
    return child;
  }

  get last(): FakeChild {
    return this.children.at(-1)!;
  }
}

/** The statuses a supervised child publishes from its start through one death and its restart. */
export const STARTED_DIED_RESTARTED = [
  'starting',
  'starting',
  'running',
  'backoff',
  'starting',
  'starting',
  'running',
] as const;
