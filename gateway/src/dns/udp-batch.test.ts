import { createSocket, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { BatchedUdpSocket, RX_SLOT, type BatchedUdpOptions } from './udp-batch.js';

/** Real sockets on 127.0.0.1: what the kernel does with recvmmsg/sendmmsg is the point. */

const open: BatchedUdpSocket[] = [];
const clients: Socket[] = [];

afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
  for (const c of clients.splice(0)) c.close();
});

async function makeServer(overrides: Partial<BatchedUdpOptions> = {}): Promise<BatchedUdpSocket> {
  const server: BatchedUdpSocket = await BatchedUdpSocket.bind({
    address: '127.0.0.1',
    port: 0,
    // echo, with the first byte marking the answer
    onMessage: (msg, ip, port) => server.send(Buffer.concat([Buffer.from('>'), msg]), ip, port),
    ...overrides,
  });
  open.push(server);
  return server;
}

async function makeClient(source = '127.0.0.1'): Promise<{ sock: Socket; got: Buffer[] }> {
  const sock = createSocket('udp4');
  clients.push(sock);
  const got: Buffer[] = [];
  sock.on('message', (m) => got.push(m));
  await new Promise<void>((resolve) => sock.bind(0, source, () => resolve()));
  return { sock, got };
}

async function until(check: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe.skipIf(!BatchedUdpSocket.available())('BatchedUdpSocket', () => {
  it('reads a burst in batches and answers every sender with its own datagrams, in order', async () => {
    const server = await makeServer({ batch: 16 });
    const a = await makeClient('127.0.0.1');
    const b = await makeClient('127.0.0.3');
    // small enough for the default socket buffers (net.core.rmem_default) on both ends
    const BURST = 60;
    // both bursts are queued on the server's socket before its event loop turn
    for (let i = 0; i < BURST; i++) {
      a.sock.send(`a${i}`, server.port, '127.0.0.1');
      b.sock.send(`b${i}`, server.port, '127.0.0.1');
    }
    await until(() => a.got.length === BURST && b.got.length === BURST);
    expect(a.got.map(String)).toEqual(Array.from({ length: BURST }, (_, i) => `>a${i}`));
    expect(b.got.map(String)).toEqual(Array.from({ length: BURST }, (_, i) => `>b${i}`));
    const stats = server.stats();
    expect(stats).toMatchObject({ received: 2 * BURST, sent: 2 * BURST, dropped: 0, truncated: 0 });
    // libuv hands over one datagram per wake-up; the rest came 16 at a time
    expect(stats.batches).toBeGreaterThanOrEqual(1);
    expect(stats.batches).toBeLessThan(BURST);
  });

  it('sends answers produced later, after the batch that read the question', async () => {
    const server: BatchedUdpSocket = await makeServer({
      onMessage: (msg, ip, port) =>
        setTimeout(() => server.send(Buffer.concat([Buffer.from('late '), msg]), ip, port), 20),
    });
    const c = await makeClient();
    c.sock.send('q1', server.port, '127.0.0.1');
    c.sock.send('q2', server.port, '127.0.0.1');
    await until(() => c.got.length === 2);
    expect(c.got.map(String).sort()).toEqual(['late q1', 'late q2']);
  });

  it('sends an answer larger than a batch slot on its own, intact', async () => {
    const big = Buffer.alloc(9000, 0x61);
    const server: BatchedUdpSocket = await makeServer({
      onMessage: (_msg, ip, port) => server.send(big, ip, port),
    });
    const c = await makeClient();
    c.sock.send('give me a lot', server.port, '127.0.0.1');
    await until(() => c.got.length === 1);
    expect(c.got[0]?.equals(big)).toBe(true);
  });

  it('drops and counts a batched datagram longer than a receive slot', async () => {
    const seen: string[] = [];
    const drops: string[] = [];
    const server: BatchedUdpSocket = await makeServer({
      onMessage: (msg, ip, port) => {
        seen.push(msg.length > 100 ? `long ${msg.length}` : String(msg));
        server.send(msg.subarray(0, 1), ip, port);
      },
      onDrop: (direction, count) => drops.push(`${direction} ${count}`),
    });
    const c = await makeClient();
    // the first datagram of a wake-up is read by libuv; the long one then comes through recvmmsg
    c.sock.send('first', server.port, '127.0.0.1');
    c.sock.send(Buffer.alloc(RX_SLOT + 1, 0x62), server.port, '127.0.0.1');
    c.sock.send('last', server.port, '127.0.0.1');
    await until(() => seen.length === 2);
    expect(seen).toEqual(['first', 'last']);
    expect(server.stats()).toMatchObject({ truncated: 1 });
    expect(drops).toEqual(['in 1']);
  });

  it('refuses a port in use with DNS_LISTEN_FAILED and frees its port on close', async () => {
    const server = await makeServer();
    const port = server.port;
    await expect(
      BatchedUdpSocket.bind({ address: '127.0.0.1', port, onMessage: () => undefined }),
    ).rejects.toMatchObject({
      code: 'DNS_LISTEN_FAILED',
      message: expect.stringContaining('address in use'),
    });
    await server.close();
    server.send(Buffer.from('after close'), '127.0.0.1', 9); // ignored, not thrown
    const again = await BatchedUdpSocket.bind({ address: '127.0.0.1', port, onMessage: () => undefined });
    open.push(again);
    expect(again.port).toBe(port);
  });

  it('rejects an IPv6 address: those listeners use a plain dgram socket', async () => {
    await expect(
      BatchedUdpSocket.bind({ address: '::1', port: 0, onMessage: () => undefined }),
    ).rejects.toMatchObject({
      code: 'DNS_LISTEN_FAILED',
      message: expect.stringContaining('not an IPv4 address'),
    });
  });
});
