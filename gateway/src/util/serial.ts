/**
 * Runs async tasks one at a time, in the order they were handed in: a task starts
 * once every task before it has settled. A task that fails rejects its own promise
 * only; the ones after it run as usual. For anything that must not interleave (one
 * nft transaction at a time, one policy mutation at a time, list loads).
 */
export class Serial {
  /** Settles when the last task queued so far has settled; never rejects. */
  #tail: Promise<void> = Promise.resolve();

  /**
   * Queue `task`; resolves or rejects as it does. A task that throws synchronously
   * rejects the same way.
   */
  run<T>(task: () => T | PromiseLike<T>): Promise<T> {
    const result = this.#tail.then(task);
    this.#tail = result.then(settled, settled);
    return result;
  }

  /** Resolves once every task queued so far has settled (never rejects). */
  idle(): Promise<void> {
    return this.#tail;
  }
}

function settled(): void {}
