/**
 * The lab's internet: plain HTTP and HTTPS servers (self-signed) and a raw TCP sink,
 * run inside the `internet` namespace. Every request is logged as one JSON line so
 * tests can tell what reached the server (the client address it saw, the payload).
 *
 * Usage: tsx internet-server.ts --log FILE --cert FILE --key FILE
 */
import { appendFileSync, readFileSync } from 'node:fs';
import { createServer as createHttp, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttps } from 'node:https';
import { createServer as createTcp } from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    log: { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
    'tcp-port': { type: 'string', default: '9000' },
  },
});
const logFile = values.log;

function record(entry: Record<string, unknown>): void {
  if (logFile) appendFileSync(logFile, JSON.stringify({ at: new Date().toISOString(), ...entry }) + '\n');
}

const ZEROS = Buffer.alloc(1 << 20);

function handler(scheme: string) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', `${scheme}://${req.headers.host ?? 'lab'}`);
    const client = req.socket.remoteAddress?.replace(/^::ffff:/, '');
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (b: Buffer) => {
      size += b.length;
      if (size <= 65536) chunks.push(b);
    });
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('latin1');
      if (url.pathname !== '/bytes') {
        record({
          scheme,
          client,
          method: req.method,
          host: req.headers.host,
          path: url.pathname + url.search,
          ua: req.headers['user-agent'],
          body: body.slice(0, 4096),
          size,
        });
      }
      if (url.pathname === '/bytes') {
        // bulk download for throughput: /bytes?n=<bytes>
        let left = Math.max(0, Number(url.searchParams.get('n') ?? 0));
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(left) });
        const pump = (): void => {
          while (left > 0) {
            const n = Math.min(left, ZEROS.length);
            left -= n;
            if (!res.write(n === ZEROS.length ? ZEROS : ZEROS.subarray(0, n))) {
              res.once('drain', pump);
              return;
            }
          }
          res.end();
        };
        pump();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          ok: true,
          scheme,
          client,
          server: req.socket.localAddress?.replace(/^::ffff:/, ''),
          host: req.headers.host,
          path: url.pathname,
        }) + '\n',
      );
    });
  };
}

createHttp(handler('http')).listen(80, '0.0.0.0');
if (values.cert && values.key) {
  createHttps({ cert: readFileSync(values.cert), key: readFileSync(values.key) }, handler('https')).listen(
    443,
    '0.0.0.0',
  );
}
createTcp((sock) => {
  const client = sock.remoteAddress;
  let size = 0;
  const chunks: Buffer[] = [];
  sock.on('data', (b) => {
    size += b.length;
    if (size <= 65536) chunks.push(b);
  });
  // log what arrived when the peer closes, or after 4 s of silence (a cut connection)
  sock.setTimeout(4000, () => sock.destroy());
  sock.on('end', () => sock.end());
  sock.on('close', () => {
    record({ scheme: 'tcp', client, size, body: Buffer.concat(chunks).toString('latin1').slice(0, 4096) });
  });
  sock.on('error', () => undefined);
}).listen(Number(values['tcp-port']), '0.0.0.0');
process.on('SIGTERM', () => process.exit(0));
