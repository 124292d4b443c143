import { request } from 'node:http';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { ALERT } from '../actions/test-fixtures.js';
import { EventBus } from '../events.js';
import { liveRoutes, sseFrame } from './live.js';

/** Open the stream and collect what arrives; `close()` hangs up. */
function stream(url: string): Promise<{ status: number; chunks: string[]; close: () => void }> {
  return new Promise((resolve, reject) => {
    const req = request(url, (res) => {
      const chunks: string[] = [];
      res.setEncoding('utf8');
      res.on('data', (c: string) => chunks.push(c));
      resolve({ status: res.statusCode ?? 0, chunks, close: () => req.destroy() });
    });
    req.on('error', (err) => (err.message === 'socket hang up' ? undefined : reject(err)));
    req.end();
  });
}

async function until(ok: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('GET /events (Server-Sent Events)', () => {
  let app: FastifyInstance;
  afterEach(async () => app?.close());

  async function serve(bus: EventBus, maxClients?: number, parentOfKid = false): Promise<string> {
    app = Fastify();
    await app.register(liveRoutes, {
      events: bus,
      ...(maxClients ? { maxClients } : {}),
      ...(parentOfKid ? { scope: () => (vm: string | undefined) => vm === 'kid' } : {}),
    });
    return app.listen({ host: '127.0.0.1', port: 0 });
  }

  it('streams alerts, DNS blocks and access requests from the event bus as they happen', async () => {
    const bus = new EventBus();
    const url = await serve(bus);
    const s = await stream(`${url}/events`);
    expect(s.status).toBe(200);
    await until(() => bus.listenerCount('ips.alert') === 1);
    bus.emit('ips.alert', ALERT);
    bus.emit('dns.blocked', { vm: 'kid', name: 'bet.example', category: 'gambling', at: 0 });
    bus.emit('audit', {
      id: 1,
      at: '2026-12-03T04:00:00Z',
      actor: 'guest:kid',
      action: 'access-request.create',
      target: 'access-request/7',
    });
    // other audit entries are not for the feed
    bus.emit('audit', {
      id: 2,
      at: '2026-12-03T04:00:00Z',
      actor: 'api',
      action: 'rule.add',
      target: 'vm/kid',
    });
    await until(() => s.chunks.join('').includes('event: request'));
    const text = s.chunks.join('');
    expect(text).toContain('event: alert\ndata: {"vm":"kid"');
    expect(text).toContain('"signature":"GPL ATTACK_RESPONSE id check returned root"');
    expect(text).toContain('event: block\ndata: {"vm":"kid","name":"bet.example","category":"gambling"');
    expect(text).toContain('event: request\ndata: {"action":"create","target":"access-request/7"');
    expect(text).not.toContain('rule.add');
    s.close();
    // a closed stream leaves no listener behind
    await until(() => bus.listenerCount('ips.alert') === 0);
  });

  it("streams a rule update's progress: each new phase at once, byte progress at most every 250 ms", async () => {
    const bus = new EventBus();
    const url = await serve(bus);
    const s = await stream(`${url}/events`);
    await until(() => bus.listenerCount('bundle.progress') === 1);
    bus.emit('bundle.progress', { phase: 'download', bytes: 1000, total: 4000 });
    // the same phase again within BUNDLE_PROGRESS_MS: left out
    bus.emit('bundle.progress', { phase: 'download', bytes: 2000, total: 4000 });
    bus.emit('bundle.progress', { phase: 'switch', version: 7 });
    bus.emit('bundle.progress', { phase: 'idle' });
    await until(() => s.chunks.join('').includes('"phase":"idle"'));
    const text = s.chunks.join('');
    expect(text).toContain('event: bundle\ndata: {"phase":"download","bytes":1000,"total":4000}\n\n');
    expect(text).not.toContain('"bytes":2000');
    expect(text).toContain('event: bundle\ndata: {"phase":"switch","version":7}\n\n');
    s.close();
  });

  it("keeps rule updates out of a parent's stream (they are the appliance's, not a VM's)", async () => {
    const bus = new EventBus();
    const url = await serve(bus, undefined, true);
    const s = await stream(`${url}/events`);
    await until(() => bus.listenerCount('bundle.progress') === 1);
    bus.emit('bundle.progress', { phase: 'switch', version: 7 });
    // the control: an alert of the parent's own VM arrives on the same stream after it
    bus.emit('ips.alert', ALERT);
    await until(() => s.chunks.join('').includes('event: alert'));
    expect(s.chunks.join('')).not.toContain('event: bundle');
    s.close();
  });

  it('refuses streams beyond its limit, and ends open ones when the server closes', async () => {
    const bus = new EventBus();
    const url = await serve(bus, 1);
    const first = await stream(`${url}/events`);
    expect(first.status).toBe(200);
    const second = await stream(`${url}/events`);
    expect(second.status).toBe(429);
    await app.close();
    expect(bus.listenerCount('ips.alert')).toBe(0);
  });

  it('frames a message as one SSE event', () => {
    expect(sseFrame({ event: 'block', data: { vm: 'kid' } })).toBe('event: block\ndata: {"vm":"kid"}\n\n');
  });
});
