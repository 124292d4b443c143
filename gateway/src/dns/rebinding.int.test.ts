import { createSocket } from 'node:dgram';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import type { ClientPolicy } from './model.js';
import { DnsFilter, type ResolvedEvent } from './server.js';
import { buildResponse, encodeName, FLAG, ipv4Rdata, parseQuery, RCODE, scanResponse, TYPE } from './wire.js';

/** DNS-rebinding protection of the real filter on 127.0.0.1, before a fake upstream that answers by name. */
const ANSWERS: Record<string, string> = {
  'inside.example': '192.168.1.10',
  'lan.example': '10.20.0.1',
  'wiki.intranet.example': '10.9.9.9',
  'public.example': '198.51.100.7',
};

function query(name: string): Buffer {
  const head = Buffer.alloc(12);
  head.writeUInt16BE(7, 0);
  head.writeUInt16BE(FLAG.RD, 2);
  head.writeUInt16BE(1, 4);
  return Buffer.concat([head, encodeName(name), Buffer.from([0, TYPE.A, 0, 1])]);
}

describe('DnsFilter DNS-rebinding protection', () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it('answers NODATA for an internet name with an internal address, learns nothing, and lets listed names through', async () => {
    const up = createSocket('udp4');
    up.on('message', (raw, rinfo) => {
      const q = parseQuery(raw)!;
      const answers = [{ type: TYPE.A, ttl: 60, rdata: ipv4Rdata(ANSWERS[q.name] ?? '203.0.113.1') }];
      up.send(
        buildResponse(raw, q, { rcode: RCODE.NOERROR, answers, udpSize: 1232, maxSize: 1232 }),
        rinfo.port,
        rinfo.address,
      );
    });
    await new Promise<void>((r) => up.bind(0, '127.0.0.1', r));
    cleanup.push(() => up.close());
    const resolved: ResolvedEvent[] = [];
    const registry = new Registry();
    const dns = new DnsFilter({
      listen: [{ address: '127.0.0.1', port: 0 }],
      upstreams: [{ address: '127.0.0.1', port: up.address().port }],
      identify: () => ({ client: 'kid' }) as ClientPolicy,
      blockPage: { v4: '10.20.0.1' },
      registry,
      rebinding: { internal: ['10.20.0.0/24'], allowNames: ['intranet.example'] },
      onResolved: (e) => resolved.push(e),
    });
    await dns.start();
    cleanup.push(() => dns.stop());
    const port = dns.addresses()[0]!.port;
    const client = createSocket('udp4');
    await new Promise<void>((r) => client.bind(0, '127.0.0.1', r));
    cleanup.push(() => client.close());
    const ask = (name: string): Promise<{ rcode: number; answers: number }> =>
      new Promise((resolve) => {
        client.once('message', (m) => {
          const s = scanResponse(m)!;
          resolve({ rcode: s.rcode, answers: s.records.filter((r) => r.section === 0).length });
        });
        client.send(query(name), port, '127.0.0.1');
      });

    // control: a public answer passes, and is learned
    expect(await ask('public.example')).toEqual({ rcode: RCODE.NOERROR, answers: 1 });
    expect(await ask('inside.example')).toEqual({ rcode: RCODE.NOERROR, answers: 0 });
    expect(await ask('lan.example')).toEqual({ rcode: RCODE.NOERROR, answers: 0 });
    // a second time from the cache: the same
    expect(await ask('inside.example')).toEqual({ rcode: RCODE.NOERROR, answers: 0 });
    expect(await ask('wiki.intranet.example')).toEqual({ rcode: RCODE.NOERROR, answers: 1 });
    expect(resolved.map((e) => e.name)).toEqual(['public.example', 'wiki.intranet.example']);
    const m = await registry.getSingleMetric('portcullis_dns_rebinding_dropped_total')!.get();
    expect(m.values[0]?.value).toBe(3);
  });
});
