import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isPortcullisError } from '../errors.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { BLOCKED_PATH } from '../suricata/block-response.js';
import { PageTokens, requestedDomain, type AccessRequestIntake } from './access-requests.js';

/** Why a name is blocked for a guest, in words a child understands. */
export interface BlockExplanation {
  readonly vm: string;
  readonly reason: string;
}

export interface BlockPageOptions {
  /** The LAN address blocked names resolve to. */
  readonly address: string;
  /** TCP port. Default 80. */
  readonly port?: number;
  /** Who is asking, and why `host` is blocked for them; undefined: not a known guest. */
  readonly explain: (clientIp: string, host: string) => BlockExplanation | undefined;
  /** The access request rules, the same as the API's: validation, de-duplication, cap, rate. */
  readonly intake: Pick<AccessRequestIntake, 'submit' | 'reject'>;
  /** The CSRF tokens of the pages shown. Default: a key of its own. */
  readonly tokens?: PageTokens;
  readonly log?: Logger;
}

const escape = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escape(title)}</title><style>
body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#222}
h1{font-size:1.6rem}.why{background:#f4f4f4;padding:1rem;border-radius:.5rem}
button{font-size:1.1rem;padding:.7rem 1.4rem;border-radius:.5rem;border:0;background:#2a62c9;color:#fff;cursor:pointer}
textarea{width:100%;font:inherit}</style></head><body><main>${body}</main></body></html>`;
}

/**
 * The name in `/.portcullis/blocked?host=<name>`: where the service sends a guest whose
 * plain HTTP to a blocked site Suricata stopped (suricata/block-response.ts); the
 * request's own Host is then the appliance's address. Undefined for any other path, or
 * a `host` that is not a domain name.
 */
function blockedName(path: string | undefined): string | undefined {
  if (path === undefined || !path.startsWith(`${BLOCKED_PATH}?`)) return undefined;
  const host = new URLSearchParams(path.slice(BLOCKED_PATH.length + 1)).get('host') ?? '';
  try {
    return requestedDomain({ domain: host });
  } catch {
    return undefined;
  }
}

/**
 * The block page: blocked names resolve to the appliance, whose plain HTTP answers
 * with what was blocked and why, and an "ask a parent" button that records an
 * access request. HTTPS to this address is refused by the firewall (fast, no hang).
 */
export class BlockPageServer {
  readonly #o: BlockPageOptions;
  readonly #log: Logger;
  readonly #tokens: PageTokens;
  #server: Server | undefined;

  constructor(options: BlockPageOptions) {
    this.#o = options;
    this.#log = options.log ?? silentLogger;
    this.#tokens = options.tokens ?? new PageTokens();
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => this.#handle(req, res));
    server.headersTimeout = 5000;
    server.requestTimeout = 10_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#o.port ?? 80, this.#o.address, () => resolve());
    });
    this.#server = server;
    this.#log.info({ address: this.#o.address, port: this.#o.port ?? 80 }, 'block page listening');
  }

  /** The TCP port listened on (the one chosen when `port` was 0); undefined before `start()`. */
  get port(): number | undefined {
    const a = this.#server?.address();
    return a && typeof a === 'object' ? a.port : undefined;
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const client = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    const named = blockedName(req.url);
    const host = named ?? (req.headers.host ?? '').replace(/:\d+$/, '').toLowerCase();
    const url = named === undefined ? `http://${host}${req.url ?? '/'}` : `http://${host}/`;
    const who = this.#o.explain(client, host);
    const send = (status: number, html: string): void => {
      res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(html);
    };
    if (!who) {
      send(
        403,
        page(
          'Blocked',
          '<h1>This page is blocked</h1><p>This device is not registered with the gateway yet. Ask a parent or the administrator to add it.</p>',
        ),
      );
      return;
    }
    if (req.method === 'POST' && req.url?.startsWith('/.portcullis/ask')) {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (b: Buffer) => {
        size += b.length;
        if (size > 8192) {
          req.destroy();
          return;
        }
        chunks.push(b);
      });
      req.on('end', () => this.#ask(who.vm, new URLSearchParams(Buffer.concat(chunks).toString()), send));
      return;
    }
    send(
      403,
      page(
        `${host} is blocked`,
        `<h1><strong>${escape(host || 'This page')}</strong> is blocked</h1>
<p class="why">On <strong>${escape(who.vm)}</strong>: ${escape(who.reason)}</p>
<form method="post" action="/.portcullis/ask">
<input type="hidden" name="domain" value="${escape(host)}"><input type="hidden" name="url" value="${escape(url)}">
<input type="hidden" name="token" value="${escape(this.#tokens.issue(who.vm, host))}">
<p><label for="reason">Why do you need it? (optional)</label><br><textarea id="reason" name="reason" rows="3" maxlength="500"></textarea></p>
<button type="submit">Ask a parent</button></form>`,
      ),
    );
  }

  /** The "ask a parent" form: a token of a page shown to this VM about this domain, then the intake's rules. */
  #ask(vm: string, form: URLSearchParams, send: (status: number, html: string) => void): void {
    const domain = (form.get('domain') ?? '').slice(0, 253);
    if (!this.#tokens.check(form.get('token'), vm, domain)) {
      this.#o.intake.reject(vm, 'csrf', domain);
      send(
        403,
        page(
          'Not sent',
          '<h1>Your request was not sent</h1><p>Open the blocked page again and ask from there.</p>',
        ),
      );
      return;
    }
    try {
      const { request } = this.#o.intake.submit(
        vm,
        { domain, url: form.get('url') ?? undefined, reason: form.get('reason') ?? undefined },
        `guest:${vm}`,
      );
      send(
        201,
        page(
          'Asked',
          `<h1>Your request was sent</h1><p>A parent will see that you asked for <strong>${escape(request.domain)}</strong> (request #${request.id}). Try again after they said yes.</p>`,
        ),
      );
    } catch (err) {
      this.#log.debug({ err, vm, domain }, 'access request refused');
      send(
        isPortcullisError(err) ? err.status : 500,
        page('Not sent', `<h1>Your request was not sent</h1><p>${escape((err as Error).message)}</p>`),
      );
    }
  }

  async stop(): Promise<void> {
    const s = this.#server;
    this.#server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
