import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, type Socket } from 'node:net';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import type { ClientPolicy } from './model.js';
import { DnsFilter, type DnsFilterOptions } from './server.js';
import { buildResponse, encodeName, FLAG, ipv4Rdata, parseQuery, RCODE, TYPE } from './wire.js';

/**
 * The per-client limits of the real filter on 127.0.0.1, over real sockets, in front
 * of a fake upstream on 127.0.0.1 (a dgram socket that answers every A question with
 * `records` addresses, after `delayMs`).
 */

const POLICY: ClientPolicy = { client: 'kid' } as ClientPolicy;

function query(name: string, id = 1): Buffer {
  const head = Buffer.alloc(12);
  head.writeUInt16BE(id, 0);
  head.writeUInt16BE(FLAG.RD, 2);
  head.writeUInt16BE(1, 4);
  const tail = Buffer.from([0, TYPE.A, 0, 1]);
  return Buffer.concat([head, encodeName(name), tail]);
}
const framed = (msg: Buffer): Buffer =>
  Buffer.concat([Buffer.from([msg.length >> 8, msg.length & 255]), msg]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function fakeUpstream(o: {
  records: number;
  delayMs: number;
}): Promise<{ sock: UdpSocket; port: number }> {
  const sock = createSocket('udp4');
  sock.on('message', (raw, rinfo) => {
    const q = parseQuery(raw);
    if (!q) return;
    const answers = Array.from({ length: o.records }, (_, i) => ({
      type: TYPE.A,
      ttl: 300,
      rdata: ipv4Rdata(`198.51.${(i >> 8) & 255}.${i & 255}`),
    }));
    const out = buildResponse(raw, q, { rcode: RCODE.NOERROR, answers, udpSize: 65_000, maxSize: 65_000 });
    setTimeout(() => sock.send(out, rinfo.port, rinfo.address), o.delayMs);
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  return { sock, port: sock.address().port };
}

async function metric(registry: Registry, name: string, label: string, value: string): Promise<number> {
  const m = registry.getSingleMetric(name);
  if (!m) return 0;
  const got = await m.get();
  return got.values.find((v) => v.labels[label] === value)?.value ?? 0;
}

describe('DnsFilter per-client limits', { timeout: 30_000 }, () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function filter(
    upstream: { records: number; delayMs: number },
    extra: Partial<DnsFilterOptions>,
  ): Promise<{ dns: DnsFilter; port: number; registry: Registry }> {
    const up = await fakeUpstream(upstream);
    cleanup.push(() => up.sock.close());
    const registry = new Registry();
    const dns = new DnsFilter({
      listen: [{ address: '127.0.0.1', port: 0 }],
      upstreams: [{ address: '127.0.0.1', port: up.port }],
      identify: () => POLICY,
      blockPage: { v4: '10.20.0.1' },
      registry,
      queryLogSize: 0,
      ...extra,
    });
    await dns.start();
    cleanup.push(() => dns.stop());
    return { dns, port: dns.addresses()[0]!.port, registry };
  }

  function open(port: number): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => resolve(s));
      s.on('error', reject);
      cleanup.push(() => s.destroy());
    });
  }
  const closed = (s: Socket): Promise<void> =>
    new Promise((r) => (s.destroyed || s.readableEnded ? r() : s.once('close', () => r())));

  /** One framed answer on a TCP connection, within `ms` (undefined: none). */
  function answer(s: Socket, ms = 2000): Promise<Buffer | undefined> {
    return new Promise((resolve) => {
      let buf = Buffer.alloc(0);
      const t = setTimeout(() => done(undefined), ms);
      const onData = (b: Buffer): void => {
        buf = Buffer.concat([buf, b]);
        if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) done(buf.subarray(2));
      };
      const done = (v: Buffer | undefined): void => {
        clearTimeout(t);
        s.off('data', onData);
        resolve(v);
      };
      s.on('data', onData);
      s.once('close', () => done(undefined));
    });
  }

  it('holds at most tcpPerClient connections per client; a closed one frees a place', async () => {
    const { port, registry } = await filter({ records: 1, delayMs: 0 }, { limits: { tcpPerClient: 3 } });
    const socks = await Promise.all([1, 2, 3].map(() => open(port)));
    for (const s of socks) {
      s.write(framed(query('a.example')));
      expect(await answer(s)).toBeDefined();
    }
    const fourth = await open(port);
    await closed(fourth);
    expect(await metric(registry, 'portcullis_dns_limited_total', 'reason', 'tcp_per_client')).toBe(1);
    socks[0]!.destroy();
    await sleep(100);
    const again = await open(port);
    again.write(framed(query('a.example')));
    expect(await answer(again)).toBeDefined();
  });

  it('closes a trickling connection at the idle timeout; complete queries keep one open until its lifetime', async () => {
    // the lifetime is far from the idle timeout, so that a loaded machine's late timers cannot blur them
    const { port, registry } = await filter(
      { records: 1, delayMs: 0 },
      { tcp: { idleTimeoutMs: 600, maxLifetimeMs: 6000 } },
    );
    // a trickle: one byte of a query every 150 ms, never a whole query
    const trickle = await open(port);
    const q = framed(query('trickle.example'));
    const started = Date.now();
    let i = 0;
    const timer = setInterval(() => {
      if (!trickle.destroyed && i < q.length - 1) trickle.write(q.subarray(i, ++i));
    }, 150);
    cleanup.push(() => clearInterval(timer));
    await closed(trickle);
    // closed by the idle timeout (600 ms), long before the lifetime would have (6 s)
    expect(Date.now() - started).toBeLessThan(3500);
    expect(await metric(registry, 'portcullis_dns_limited_total', 'reason', 'tcp_idle')).toBe(1);
    // control: whole queries every 300 ms keep a connection past the idle timeout ...
    const busy = await open(port);
    const opened = Date.now();
    let answered = 0;
    while (!busy.destroyed && Date.now() - opened < 12_000) {
      busy.write(framed(query('busy.example', answered + 1)));
      if (await answer(busy, 1000)) answered++;
      await sleep(300);
    }
    // ... but not past its lifetime
    expect(answered).toBeGreaterThan(3);
    expect(Date.now() - opened).toBeGreaterThan(3500);
    expect(Date.now() - opened).toBeLessThan(10_000);
    expect(await metric(registry, 'portcullis_dns_limited_total', 'reason', 'tcp_lifetime')).toBe(1);
  });

  it('stops reading from a client that does not read its answers', async () => {
    // answers of ~64 KB each (4,000 addresses): a client that never reads would make
    // the filter buffer 64 KB per query it sends
    const { registry } = await (async () => {
      const f = await filter({ records: 4000, delayMs: 0 }, { tcp: { maxPendingWriteBytes: 65_536 } });
      const s = await open(f.port);
      s.pause();
      const q = framed(query('big.example'));
      const burst = Buffer.concat(Array.from({ length: 4000 }, () => q)); // 4,000 queries, 120 KB
      s.write(burst);
      await sleep(2000);
      return f;
    })();
    const answeredBytes =
      (await metric(registry, 'portcullis_dns_queries_total', 'action', 'allow')) * 64_000;
    // what the kernel buffers on loopback (a few MB each way) plus the filter's own bound,
    // far below the 256 MB the 4,000 answers would take
    expect(answeredBytes).toBeLessThan(40 * 1024 * 1024);
    expect(answeredBytes).toBeGreaterThan(0);
  });

  it('limits a client to its query rate over UDP; another client is not affected', async () => {
    const { port, registry } = await filter(
      { records: 1, delayMs: 0 },
      { limits: { queriesPerSecond: 50, burst: 50 } },
    );
    const ask = async (from: string, n: number): Promise<number> => {
      const s = createSocket('udp4');
      await new Promise<void>((r) => s.bind(0, from, r));
      let got = 0;
      s.on('message', () => got++);
      for (let i = 0; i < n; i++) s.send(query('rate.example', i), port, '127.0.0.1');
      await sleep(500);
      s.close();
      return got;
    };
    const flood = await ask('127.0.0.1', 500);
    expect(flood).toBeGreaterThanOrEqual(50);
    expect(flood).toBeLessThan(120);
    // another source address (the loopback net is all ours): its own bucket
    expect(await ask('127.0.0.2', 20)).toBe(20);
    expect(await metric(registry, 'portcullis_dns_limited_total', 'reason', 'rate')).toBeGreaterThan(300);
  });

  it('answers SERVFAIL beyond upstreamPerSecond cache misses; cached names are still answered', async () => {
    const { port, registry } = await filter({ records: 1, delayMs: 0 }, { limits: { upstreamPerSecond: 5 } });
    const s = createSocket('udp4');
    cleanup.push(() => s.close());
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
    const rcodes: number[] = [];
    s.on('message', (m) => rcodes.push(m.readUInt16BE(2) & 0xf));
    // 10 misses allowed in a row (burst), the rest of 30 random names refused
    for (let i = 0; i < 30; i++) s.send(query(`miss${i}.example`, i), port, '127.0.0.1');
    await sleep(500);
    expect(rcodes.filter((r) => r === RCODE.NOERROR).length).toBeLessThanOrEqual(13);
    expect(rcodes.filter((r) => r === RCODE.SERVFAIL).length).toBeGreaterThanOrEqual(17);
    // a name in the cache costs no upstream look-up: answered
    rcodes.length = 0;
    s.send(query('miss0.example', 99), port, '127.0.0.1');
    await sleep(200);
    expect(rcodes).toEqual([RCODE.NOERROR]);
    expect(
      await metric(registry, 'portcullis_dns_limited_total', 'reason', 'upstream'),
    ).toBeGreaterThanOrEqual(17);
  });

  it('answers SERVFAIL at once beyond maxUpstream look-ups waiting for one client', async () => {
    const { port, registry } = await filter({ records: 1, delayMs: 800 }, { limits: { maxUpstream: 5 } });
    const s = createSocket('udp4');
    cleanup.push(() => s.close());
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
    const rcodes: number[] = [];
    s.on('message', (m) => rcodes.push(m.readUInt16BE(2) & 0xf));
    for (let i = 0; i < 20; i++) s.send(query(`r${i}.example`, i), port, '127.0.0.1');
    await sleep(300);
    expect(rcodes).toEqual(Array.from({ length: 15 }, () => RCODE.SERVFAIL));
    await sleep(1000);
    expect(rcodes.filter((r) => r === RCODE.NOERROR)).toHaveLength(5);
    expect(await metric(registry, 'portcullis_dns_limited_total', 'reason', 'upstream')).toBe(15);
  });
});
