/**
 * The one shape of a time source in the service: a function returning milliseconds
 * since the epoch. The service passes {@link systemClock}; tests pass a fake, replay
 * passes event time. Where a Date is needed, `new Date(clock())`.
 */
export type Clock = () => number;

/** Wall time: `Date.now()`. */
export const systemClock: Clock = () => Date.now();
