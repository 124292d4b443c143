import { isPortcullisError, type PortcullisError } from './errors.js';

/** Helpers for tests. Not used by the service. */

/** The PortcullisError `p` rejects with; fails the test when it resolves or rejects with anything else. */
export async function rejection(p: Promise<unknown>): Promise<PortcullisError> {
  try {
    await p;
  } catch (err) {
    if (isPortcullisError(err)) return err;
    throw err;
  }
  throw new Error('expected a rejection');
}
