import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config.js';
import { PortcullisError } from '../errors.js';
import { certificateFingerprint, keyMatchesCertificate, selfSignedCertificate } from './cert.js';

/** Where the service keeps its self-signed certificate: `<dataDir>/tls/`. */
export function tlsPaths(config: Config): { cert: string; key: string; own: boolean } {
  const tls = config.api.tls;
  if (tls?.cert !== undefined || tls?.key !== undefined) {
    if (tls.cert === undefined || tls.key === undefined) {
      throw new PortcullisError('CONFIG_INVALID', 'api.tls needs both cert and key (PEM files), or neither', {
        path: '/api/tls',
      });
    }
    return { cert: tls.cert, key: tls.key, own: true };
  }
  const dir = join(config.dataDir, 'tls');
  return { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem'), own: false };
}

/** Whether the config wants TLS on the management listener (the default). */
export function tlsEnabled(config: Config): boolean {
  return config.api.tls?.enabled !== false;
}

/**
 * The management listener's certificate and key: the admin's own (api.tls.cert/key),
 * or the self-signed pair in `<dataDir>/tls/`, made on first use for the listen
 * address, the configured names and loopback. The key file is 0600.
 * @throws CONFIG_INVALID when the admin's files are missing, unreadable or do not match.
 */
export function ensureTls(config: Config): {
  cert: string;
  key: string;
  fingerprint: string;
  created: boolean;
} {
  const paths = tlsPaths(config);
  let created = false;
  if (!paths.own && !(existsSync(paths.cert) && existsSync(paths.key))) {
    const listen = config.api.listen;
    const names = [
      ...(listen === '0.0.0.0' || listen === '::' ? [] : [listen]),
      ...(config.api.names ?? []),
      '127.0.0.1',
      'localhost',
    ];
    const pair = selfSignedCertificate({ names });
    mkdirSync(join(config.dataDir, 'tls'), { recursive: true, mode: 0o700 });
    // the key first and whole, so that a crash never leaves a certificate without its key
    writeFileSync(`${paths.key}.new`, pair.key, { mode: 0o600 });
    chmodSync(`${paths.key}.new`, 0o600);
    renameSync(`${paths.key}.new`, paths.key);
    writeFileSync(`${paths.cert}.new`, pair.cert);
    renameSync(`${paths.cert}.new`, paths.cert);
    created = true;
  }
  let cert: string;
  let key: string;
  try {
    cert = readFileSync(paths.cert, 'utf8');
    key = readFileSync(paths.key, 'utf8');
  } catch (cause) {
    throw new PortcullisError('CONFIG_INVALID', `cannot read the TLS files: ${(cause as Error).message}`, {
      cause,
      path: '/api/tls',
    });
  }
  let fingerprint: string;
  try {
    if (!keyMatchesCertificate(cert, key)) throw new Error('the key does not belong to the certificate');
    fingerprint = certificateFingerprint(cert);
  } catch (cause) {
    throw new PortcullisError(
      'CONFIG_INVALID',
      `TLS certificate ${paths.cert} and key ${paths.key}: ${(cause as Error).message}`,
      { cause, path: '/api/tls' },
    );
  }
  return { cert, key, fingerprint, created };
}
