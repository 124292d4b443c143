import { describe, expect, it } from 'vitest';
import { Serial } from './serial.js';

/** A promise with its resolve and reject at hand. */
function deferred<T = void>(): {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
} {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('Serial', () => {
  it('runs one task at a time, in call order', async () => {
    const serial = new Serial();
    const log: string[] = [];
    const gates = [deferred(), deferred(), deferred()];
    const runs = gates.map((gate, i) =>
      serial.run(async () => {
        log.push(`start ${i}`);
        await gate.promise;
        log.push(`end ${i}`);
        return i;
      }),
    );
    await tick();
    expect(log).toEqual(['start 0']);
    gates[2]!.resolve();
    gates[1]!.resolve();
    await tick();
    expect(log).toEqual(['start 0']);
    gates[0]!.resolve();
    expect(await Promise.all(runs)).toEqual([0, 1, 2]);
    expect(log).toEqual(['start 0', 'end 0', 'start 1', 'end 1', 'start 2', 'end 2']);
  });

  it('rejects a failed task on its own promise and goes on with the next', async () => {
    const serial = new Serial();
    const failed = serial.run(async () => {
      throw new Error('boom');
    });
    const thrown = serial.run(() => {
      throw new Error('sync boom');
    });
    const next = serial.run(() => 'next');
    await expect(failed).rejects.toThrow('boom');
    await expect(thrown).rejects.toThrow('sync boom');
    await expect(next).resolves.toBe('next');
  });

  it('does not start a task before the previous one has settled, even a failing one', async () => {
    const serial = new Serial();
    const gate = deferred();
    let started = false;
    const first = serial.run(() => gate.promise);
    const second = serial.run(() => {
      started = true;
    });
    await tick();
    expect(started).toBe(false);
    gate.reject(new Error('late failure'));
    await expect(first).rejects.toThrow('late failure');
    await second;
    expect(started).toBe(true);
  });

  it('tells when everything queued so far has settled, without rejecting', async () => {
    const serial = new Serial();
    await serial.idle();
    const gate = deferred();
    const task = serial.run(() => gate.promise);
    let idle = false;
    void serial.idle().then(() => (idle = true));
    await tick();
    expect(idle).toBe(false);
    gate.reject(new Error('ignored by idle'));
    await expect(task).rejects.toThrow();
    await tick();
    expect(idle).toBe(true);
  });
});
