/**
 * The lab's rule vendor: serves a static TUF repository over HTTPS, as any static web
 * host or object store would, inside the `internet` namespace on a TEST-NET address.
 * Every request is logged as one JSON line (path, status, bytes) so tests can tell what
 * the appliance fetched. `--rate` (bytes/s) slows downloads down, so a test can watch
 * the progress and switch while a download runs.
 *
 * Usage: tsx vendor-server.ts --root DIR --cert FILE --key FILE --listen ADDR [--log FILE]
 */
import { appendFileSync, createReadStream, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:https';
import { join, normalize } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    root: { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
    listen: { type: 'string' },
    port: { type: 'string', default: '443' },
    log: { type: 'string' },
  },
});
if (!values.root || !values.cert || !values.key || !values.listen) {
  process.stderr.write(
    'usage: vendor-server.ts --root DIR --cert FILE --key FILE --listen ADDR [--log FILE]\n',
  );
  process.exit(2);
}
const root = values.root;

function record(entry: Record<string, unknown>): void {
  if (values.log)
    appendFileSync(values.log, `${JSON.stringify({ at: new Date().toISOString(), ...entry })}\n`);
}

createServer({ cert: readFileSync(values.cert), key: readFileSync(values.key) }, (req, res) => {
  const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'https://vendor').pathname));
  const file = join(root, path);
  let size = -1;
  try {
    const st = statSync(file);
    if (st.isFile() && !path.includes('..')) size = st.size;
  } catch {
    // missing
  }
  record({ path, status: size < 0 ? 404 : 200, size, client: req.socket.remoteAddress });
  if (size < 0) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(size) });
  createReadStream(file).pipe(res);
}).listen(Number(values.port), values.listen);
process.on('SIGTERM', () => process.exit(0));
