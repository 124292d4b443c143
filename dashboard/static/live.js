// The live feed: one Server-Sent Events stream (/api/v1/events) for the whole page.
// Views subscribe to its events (alert, block, request, history, bundle) instead of polling.
import { API } from './api.js';

const TYPES = ['alert', 'block', 'request', 'history', 'bundle'];
const listeners = new Map(TYPES.map((t) => [t, new Set()]));
let source;

/** Calls `cb(data)` on each live event of `type`; returns the function that stops it. */
export function onLive(type, cb) {
  connect();
  listeners.get(type).add(cb);
  return () => listeners.get(type).delete(cb);
}

/** Whether the stream is open now (the browser reconnects by itself after a drop). */
export function liveConnected() {
  return source?.readyState === EventSource.OPEN;
}

function connect() {
  if (source) return;
  source = new EventSource(`${API}/events`);
  for (const type of TYPES) {
    source.addEventListener(type, (e) => {
      let data;
      try {
        data = JSON.parse(e.data);
      } catch {
        return;
      }
      for (const cb of [...listeners.get(type)]) cb(data);
    });
  }
  const mark = () => document.documentElement.toggleAttribute('data-live', liveConnected());
  source.addEventListener('open', mark);
  source.addEventListener('error', mark);
}
