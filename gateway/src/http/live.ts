import type { ServerResponse } from 'node:http';
import { Type } from 'typebox';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { PortcullisError } from '../errors.js';
import type { BundleProgressEvent } from '../bundles/service.js';
import type { EventBus, PortcullisEvents } from '../events.js';
import type { TrafficHistory } from '../metrics/history.js';

/**
 * The dashboard's live side: `GET /events`, a Server-Sent Events stream of what
 * happens (IPS alerts, DNS blocks, access requests asked and decided, a rule update's
 * progress) straight from the event bus, and each new point of the traffic history;
 * and `GET /stats/history?range=hour|day`, the points its charts draw. Both sit inside
 * the API, behind whatever guards its reads.
 */

/** One message of the stream: its SSE event name and JSON data. */
export interface LiveMessage {
  readonly event: 'alert' | 'block' | 'request' | 'history' | 'bundle';
  readonly data: Record<string, unknown>;
}

/** The bus events the stream carries, mapped to what the page needs. Pure. */
export const LIVE_EVENTS = {
  'ips.alert': (a: PortcullisEvents['ips.alert']): LiveMessage => ({
    event: 'alert',
    data: {
      vm: a.vm,
      at: a.timestamp,
      signature: a.signature,
      signatureId: a.sid,
      severity: a.severity,
      category: a.category,
      action: a.action,
      src: a.src,
      dest: a.dest,
    },
  }),
  'dns.blocked': (b: PortcullisEvents['dns.blocked']): LiveMessage => ({
    event: 'block',
    data: { vm: b.vm, name: b.name, category: b.category, at: new Date(b.at).toISOString() },
  }),
  audit: (e: PortcullisEvents['audit']): LiveMessage | undefined =>
    e.action.startsWith('access-request.')
      ? {
          event: 'request',
          data: {
            action: e.action.slice('access-request.'.length),
            target: e.target,
            actor: e.actor,
            at: e.at,
          },
        }
      : undefined,
  // a rule update moving on: the page shows where it is without polling
  'bundle.progress': (p: BundleProgressEvent): LiveMessage => ({
    event: 'bundle',
    data: {
      phase: p.phase,
      ...(p.version !== undefined ? { version: p.version } : {}),
      ...(p.bytes !== undefined ? { bytes: p.bytes } : {}),
      ...(p.total !== undefined ? { total: p.total } : {}),
    },
  }),
} as const;

/** A rule update's byte progress is sent at most this often per stream, in ms (a new phase at once). */
export const BUNDLE_PROGRESS_MS = 250;

/** The wire form of a message (one SSE event). Pure. */
export function sseFrame(m: LiveMessage): string {
  return `event: ${m.event}\ndata: ${JSON.stringify(m.data)}\n\n`;
}

export interface LiveOptions {
  readonly events: EventBus;
  readonly history?: TrafficHistory;
  /** Streams open at once; more are answered 429 RATE_LIMITED. Default 32. */
  readonly maxClients?: number;
  /** A comment line this often keeps proxies from closing an idle stream, in ms. Default 15,000. */
  readonly keepaliveMs?: number;
  /** DNS blocks sent per stream and second at most (the rest are dropped). Default 20. */
  readonly blocksPerSecond?: number;
  /**
   * Which VMs a stream's reader may hear of (a parent: theirs); undefined: all. Alerts and
   * blocks of other VMs are not sent to them, and access requests reach them without
   * their target and actor (the page only refetches its own list on them).
   */
  readonly scope?: (req: FastifyRequest) => ((vm: string | undefined) => boolean) | undefined;
}

export const liveRoutes: FastifyPluginAsync<LiveOptions> = async (app, opts) => {
  const clients = new Set<ServerResponse>();
  const maxClients = opts.maxClients ?? 32;
  // the server's close() waits for open connections: end the streams before it
  app.addHook('preClose', async () => {
    for (const res of clients) res.end();
    clients.clear();
  });

  app.get('/events', async (req, reply) => {
    if (clients.size >= maxClients)
      throw new PortcullisError('RATE_LIMITED', `too many live streams open (${maxClients}); close one`);
    const res = reply.raw;
    reply.hijack();
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'x-accel-buffering': 'no',
      connection: 'keep-alive',
    });
    res.write('retry: 3000\n\n');
    clients.add(res);
    const owner = {};
    const visible = opts.scope?.(req);
    let window = 0;
    let sentInWindow = 0;
    let bundlePhase: unknown;
    let bundleSentAt = 0;
    const send = (m: LiveMessage | undefined): void => {
      // a slow reader loses events rather than the service its memory
      if (m === undefined || res.writableNeedDrain) return;
      if (
        visible &&
        (m.event === 'alert' || m.event === 'block') &&
        !visible(m.data.vm as string | undefined)
      )
        return;
      // rule updates are the appliance's, not a VM's: not for a parent's stream
      if (visible && m.event === 'bundle') return;
      if (m.event === 'bundle') {
        const now = Date.now();
        if (m.data.phase === bundlePhase && now - bundleSentAt < BUNDLE_PROGRESS_MS) return;
        [bundlePhase, bundleSentAt] = [m.data.phase, now];
      }
      if (visible && m.event === 'request')
        m = { event: 'request', data: { action: m.data.action, at: m.data.at } };
      if (m.event === 'block') {
        const second = Math.floor(Date.now() / 1000);
        if (second !== window) [window, sentInWindow] = [second, 0];
        if (++sentInWindow > (opts.blocksPerSecond ?? 20)) return;
      }
      res.write(sseFrame(m));
    };
    opts.events.on(owner, 'ips.alert', (a) => send(LIVE_EVENTS['ips.alert'](a)));
    opts.events.on(owner, 'dns.blocked', (b) => send(LIVE_EVENTS['dns.blocked'](b)));
    opts.events.on(owner, 'audit', (e) => send(LIVE_EVENTS.audit(e)));
    opts.events.on(owner, 'bundle.progress', (p) => send(LIVE_EVENTS['bundle.progress'](p)));
    // a new point of the charts' history: the page fetches it
    const offHistory = opts.history?.onSample((at) =>
      send({ event: 'history', data: { at: new Date(at).toISOString() } }),
    );
    const keepalive = setInterval(() => res.write(': keepalive\n\n'), opts.keepaliveMs ?? 15_000);
    keepalive.unref();
    req.raw.on('close', () => {
      clearInterval(keepalive);
      offHistory?.();
      opts.events.off(owner);
      clients.delete(res);
    });
  });

  app.get<{ Querystring: { range?: 'hour' | 'day' } }>(
    '/stats/history',
    {
      schema: {
        querystring: Type.Object({
          range: Type.Optional(Type.Union([Type.Literal('hour'), Type.Literal('day')])),
        }),
      },
    },
    async (req) => {
      const history = opts.history;
      if (!history) throw new PortcullisError('NOT_FOUND', 'this service keeps no traffic history');
      const seconds = req.query.range === 'day' ? 86_400 : 3_600;
      return history.series(Math.ceil(seconds / history.stepSeconds));
    },
  );
};
