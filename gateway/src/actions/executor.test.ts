import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { isPortcullisError } from '../errors.js';
import { EventBus } from '../events.js';
import type { Decision, NotifyPayload, RecordDecision } from './engine.js';
import { execute, subscribeWebhooks, WebhookNotifier, type ActionExecutor } from './executor.js';
import { BLOCK, NOTIFY } from './test-fixtures.js';

const payload: NotifyPayload = {
  event: 'alert',
  vm: 'kid',
  at: '2024-01-31T12:00:00.000Z',
  sid: 1,
  signature: 'x',
  severity: 1,
  remote: '192.0.2.7',
};

/** A local webhook that answers with `status` after `delayMs`, and records requests. */
async function makeHook(
  status: number,
  delayMs = 0,
): Promise<{
  url: string;
  received: { headers: IncomingMessage['headers']; body: string }[];
  server: Server;
}> {
  const received: { headers: IncomingMessage['headers']; body: string }[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      setTimeout(() => res.writeHead(status).end('ok'), delayMs);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/hook?token=secret`, received, server };
}

let servers: Server[] = [];
afterEach(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
  servers = [];
});

describe('WebhookNotifier', () => {
  it('POSTs the payload as JSON', async () => {
    const hook = await makeHook(204);
    servers.push(hook.server);
    await new WebhookNotifier().notify(hook.url, payload);
    expect(hook.received).toHaveLength(1);
    expect(hook.received[0]?.headers['content-type']).toBe('application/json');
    expect(JSON.parse(hook.received[0]?.body ?? '')).toEqual(payload);
  });

  it('fails with ACTION_NOTIFY_FAILED on a non-2xx answer, without leaking the token', async () => {
    const hook = await makeHook(500);
    servers.push(hook.server);
    const err = await new WebhookNotifier().notify(hook.url, payload).catch((e: unknown) => e);
    expect(isPortcullisError(err, 'ACTION_NOTIFY_FAILED')).toBe(true);
    expect((err as Error).message).toMatch(/answered 500/);
    expect((err as Error).message).not.toContain('secret');
  });

  it('gives up after the timeout', async () => {
    const hook = await makeHook(200, 2000);
    servers.push(hook.server);
    const started = Date.now();
    const err = await new WebhookNotifier({ timeoutMs: 100 })
      .notify(hook.url, payload)
      .catch((e: unknown) => e);
    expect(isPortcullisError(err, 'ACTION_NOTIFY_FAILED')).toBe(true);
    expect((err as Error).message).toMatch(/within 100 ms/);
    expect(Date.now() - started).toBeLessThan(1500);
  });

  it('fails cleanly when nothing listens', async () => {
    const err = await new WebhookNotifier({ timeoutMs: 1000 })
      .notify('http://127.0.0.1:1/hook', payload)
      .catch((e: unknown) => e);
    expect(isPortcullisError(err, 'ACTION_NOTIFY_FAILED')).toBe(true);
  });
});

describe('execute', () => {
  it('sends each decision to the matching executor call', async () => {
    const calls: string[] = [];
    const executor: ActionExecutor = {
      blockHost: async (remote, seconds, vm) => void calls.push(`block ${remote} ${seconds} ${vm}`),
      quarantine: async (vm, reason) => void calls.push(`quarantine ${vm} ${reason}`),
      notify: async (url, p) => void calls.push(`notify ${url} ${p.event}`),
      record: async (d: RecordDecision) => void calls.push(`record ${d.sid}`),
    };
    const decisions: Decision[] = [
      {
        kind: 'record',
        vm: 'kid',
        timestamp: 't',
        gid: 1,
        sid: 7,
        rev: 1,
        signature: 's',
        category: '',
        severity: 1,
        action: 'allowed',
        src: null,
        dest: null,
        remote: null,
        flowId: null,
      },
      {
        kind: 'block',
        vm: 'kid',
        remote: '192.0.2.7',
        until: 1,
        seconds: 60,
        sid: 7,
        reason: 'r',
        reassert: false,
      },
      { kind: 'quarantine', vm: 'kid', reason: 'too many', at: 1, sids: [7] },
      { kind: 'notify', url: 'http://h', vm: 'kid', payload },
    ];
    for (const d of decisions) await execute(d, executor);
    expect(calls).toEqual([
      'record 7',
      'block 192.0.2.7 60 kid',
      'quarantine kid too many',
      'notify http://h alert',
    ]);
  });
});

describe('subscribeWebhooks', () => {
  it('POSTs every notify decision published on the bus and publishes the outcome', async () => {
    const ok = await makeHook(204);
    servers.push(ok.server);
    const bus = new EventBus();
    const outcomes: Array<{ kind: string; ok: boolean; error?: string }> = [];
    bus.on('test', 'ips.action', (a) =>
      outcomes.push({ kind: a.decision.kind, ok: a.ok, ...(a.error ? { error: a.error } : {}) }),
    );
    const off = subscribeWebhooks(bus);
    bus.emit('ips.decision', { ...NOTIFY, url: ok.url });
    // blocks and quarantines are the IPS's own: no POST for them
    bus.emit('ips.decision', BLOCK);
    await vi.waitFor(() => expect(outcomes).toHaveLength(1));
    expect(JSON.parse(ok.received[0]!.body)).toEqual(NOTIFY.payload);
    expect(outcomes).toEqual([{ kind: 'notify', ok: true }]);
    // a failing hook: published as failed, with why
    const bad = await makeHook(500);
    servers.push(bad.server);
    bus.emit('ips.decision', { ...NOTIFY, url: bad.url });
    await vi.waitFor(() => expect(outcomes).toHaveLength(2));
    expect(outcomes[1]).toMatchObject({ kind: 'notify', ok: false });
    expect(outcomes[1]!.error).toContain('answered 500');
    off();
    expect(bus.listenerCount('ips.decision')).toBe(0);
  });
});
