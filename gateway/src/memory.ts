import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let collect: (() => void) | undefined;

/**
 * Run a full garbage collection now. For right after one-off bulk work (loading a
 * million-entry address list and putting it into the kernel): the garbage it left
 * (the list's text, the transaction's JSON) would otherwise stay resident until V8's
 * heuristics next call for a full collection, and a daemon that then only makes small
 * changes may not allocate enough to get there for a long time. Takes milliseconds:
 * marking visits what is live, not what is dead.
 *
 * Uses `gc` when node runs with --expose-gc; otherwise gets it from a context created
 * with the flag on, leaving the global scope as it was.
 */
export function reclaimMemory(): void {
  if (collect === undefined) {
    const exposed = (globalThis as { gc?: () => void }).gc;
    if (exposed) collect = exposed;
    else {
      setFlagsFromString('--expose-gc');
      collect = runInNewContext('gc') as () => void;
      setFlagsFromString('--no-expose-gc');
    }
  }
  collect();
}
