import { createReadStream } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { rootCertificates } from 'node:tls';
import { stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { isAbsolute, resolve } from 'node:path';
import { BaseFetcher } from 'tuf-js';
// tuf-js ends its walk over root versions on this error class with status 404/403, so a
// fetcher of its own must throw exactly it; the class is not re-exported by the package root
import { DownloadHTTPError } from 'tuf-js/dist/error.js';
import { PortcullisError } from '../errors.js';

/**
 * How tuf-js reaches a repository: over http(s), or in a local folder (a copy of the
 * repository on a USB stick, for appliances without a route to the vendor). A missing file
 * answers like HTTP 404, so tuf-js stops at the newest root version either way. Every
 * failure is reported to `onError` before tuf-js sees (and may wrap) it, so the updater can
 * tell the caller exactly what went wrong.
 */

/** Options of {@link BundleFetcher}. */
export interface BundleFetcherOptions {
  /** Per file, from request to last byte, in ms. Default 300,000. */
  readonly timeoutMs?: number;
  /** Called with every error a download ends in. */
  readonly onError?: (err: unknown) => void;
  /**
   * PEM of a CA trusted for https besides Node's public roots (a vendor with a private CA,
   * the lab's). Default: the public roots only.
   */
  readonly ca?: string;
}

/** GET over https trusting `ca` besides the public roots. */
function fetchWithCa(
  url: URL,
  ca: string,
  timeoutMs: number,
): Promise<ReadableStream<Uint8Array<ArrayBuffer>>> {
  return new Promise((resolve, reject) => {
    const req = httpsGet(url, { ca: [...rootCertificates, ca], timeout: timeoutMs }, (res) => {
      const status = res.statusCode ?? 0;
      if (status < 200 || status > 299) {
        res.resume();
        reject(new DownloadHTTPError(`${url.href} answered HTTP ${status}`, status));
        return;
      }
      resolve(Readable.toWeb(res) as ReadableStream<Uint8Array<ArrayBuffer>>);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url.href} within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/**
 * The base URL of a repository from what an operator types: an http(s) URL, a file: URL, or
 * a folder path. Always ends in `/`.
 * @throws BUNDLE_FETCH_FAILED for another URL scheme.
 */
export function repositoryUrl(source: string): URL {
  let url: URL;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(source)) url = new URL(source);
  else url = pathToFileURL(isAbsolute(source) ? source : resolve(source));
  if (!['http:', 'https:', 'file:'].includes(url.protocol)) {
    throw new PortcullisError(
      'BUNDLE_FETCH_FAILED',
      `bundle source ${source} must be an http(s) URL or a folder, not ${url.protocol}`,
    );
  }
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return url;
}

/** A tuf-js fetcher for http(s) and local folders, with byte counting for progress. */
export class BundleFetcher extends BaseFetcher {
  readonly #timeoutMs: number;
  readonly #onError: ((err: unknown) => void) | undefined;
  readonly #ca: string | undefined;
  /** Called with the bytes received so far of the current download; set around a target download. */
  onBytes: ((bytes: number) => void) | undefined;

  constructor(options: BundleFetcherOptions = {}) {
    super();
    this.#timeoutMs = options.timeoutMs ?? 300_000;
    this.#onError = options.onError;
    this.#ca = options.ca;
  }

  override async downloadFile<T>(
    url: string,
    maxLength: number,
    handler: (file: string) => Promise<T>,
  ): Promise<T> {
    try {
      return await super.downloadFile(url, maxLength, handler);
    } catch (err) {
      this.#onError?.(err);
      throw err;
    }
  }

  override async fetch(url: string): Promise<ReadableStream<Uint8Array<ArrayBuffer>>> {
    const u = new URL(url);
    let body: ReadableStream<Uint8Array<ArrayBuffer>>;
    if (u.protocol === 'file:') {
      const path = fileURLToPath(u);
      const st = await stat(path).catch(() => undefined);
      if (!st?.isFile()) throw new DownloadHTTPError(`${path} does not exist`, 404);
      body = Readable.toWeb(createReadStream(path)) as ReadableStream<Uint8Array<ArrayBuffer>>;
    } else if (u.protocol === 'https:' && this.#ca !== undefined) {
      body = await fetchWithCa(u, this.#ca, this.#timeoutMs);
    } else if (u.protocol === 'http:' || u.protocol === 'https:') {
      const res = await fetch(u, { signal: AbortSignal.timeout(this.#timeoutMs) });
      if (!res.ok || !res.body) throw new DownloadHTTPError(`${url} answered HTTP ${res.status}`, res.status);
      body = res.body as ReadableStream<Uint8Array<ArrayBuffer>>;
    } else {
      throw new DownloadHTTPError(`${u.protocol} is not supported`, 400);
    }
    const onBytes = this.onBytes;
    if (!onBytes) return body;
    let bytes = 0;
    return body.pipeThrough(
      new TransformStream<Uint8Array<ArrayBuffer>, Uint8Array<ArrayBuffer>>({
        transform(chunk, controller) {
          bytes += chunk.length;
          onBytes(bytes);
          controller.enqueue(chunk);
        },
      }),
    );
  }
}
