import { X509Certificate, createPrivateKey } from 'node:crypto';
import { createServer } from 'node:https';
import { connect } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import {
  certificateFingerprint,
  certificateSerial,
  keyMatchesCertificate,
  selfSignedCertificate,
} from './cert.js';

describe('selfSignedCertificate', () => {
  const { cert, key } = selfSignedCertificate({ names: ['10.99.0.2', 'gateway.home.arpa', '::1'], days: 30 });

  it('is a certificate signed by its own key, for the names given', () => {
    const x = new X509Certificate(cert);
    expect(x.subject).toBe('CN=portcullis');
    expect(x.verify(x.publicKey)).toBe(true);
    expect(x.subjectAltName).toBe('IP Address:10.99.0.2, DNS:gateway.home.arpa, IP Address:0:0:0:0:0:0:0:1');
    expect(x.checkIP('10.99.0.2')).toBe('10.99.0.2');
    expect(x.checkHost('gateway.home.arpa')).toBe('gateway.home.arpa');
    expect(x.checkIP('10.99.0.3')).toBeUndefined();
    const days = (Date.parse(x.validTo) - Date.parse(x.validFrom)) / 86_400_000;
    expect(days).toBeCloseTo(30, 0);
    expect(createPrivateKey(key).asymmetricKeyType).toBe('ec');
    expect(keyMatchesCertificate(cert, key)).toBe(true);
    expect(keyMatchesCertificate(cert, selfSignedCertificate({ names: ['x.test'] }).key)).toBe(false);
    expect(certificateFingerprint(cert)).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  });

  it('serves TLS that a client trusting only it accepts, for its address', async () => {
    const server = createServer({ cert, key }, (_req, res) => res.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    try {
      const handshake = (ca: string, host: string) =>
        new Promise<{ authorized: boolean; error?: string }>((resolve) => {
          const s = connect({
            host: '127.0.0.1',
            port,
            ca,
            servername: undefined,
            checkServerIdentity: (_h, peer) => {
              const ok =
                new X509Certificate(peer.raw).checkIP(host) !== undefined ||
                new X509Certificate(peer.raw).checkHost(host) !== undefined;
              return ok ? undefined : new Error(`not for ${host}`);
            },
          });
          s.on('secureConnect', () => {
            resolve({ authorized: s.authorized });
            s.end();
          });
          s.on('error', (err) => resolve({ authorized: false, error: err.message }));
        });
      expect(await handshake(cert, '10.99.0.2')).toEqual({ authorized: true });
      // negative control: another self-signed certificate as the trust anchor fails
      const other = selfSignedCertificate({ names: ['10.99.0.2'] }).cert;
      expect((await handshake(other, '10.99.0.2')).authorized).toBe(false);
    } finally {
      server.close();
    }
  });

  it('dates past 2049 as GeneralizedTime', () => {
    const x = new X509Certificate(
      selfSignedCertificate({ names: ['a.test'], notBefore: Date.parse('2049-06-01T00:00:00Z'), days: 400 })
        .cert,
    );
    expect(new Date(x.validTo).getUTCFullYear()).toBe(2050);
  });
});

describe('certificateSerial', () => {
  it('is positive and minimal in DER whatever the random bytes (a leading zero was illegal padding)', () => {
    for (const first of [0x00, 0x01, 0x7f, 0x80, 0xff]) {
      const serial = certificateSerial(Buffer.from([first, 0x00, 0x12]));
      expect(serial[0]! & 0x80, `first byte ${first}`).toBe(0);
      expect(serial[0], `first byte ${first}`).not.toBe(0);
      expect(serial.subarray(1)).toEqual(Buffer.from([0x00, 0x12]));
    }
  });
});
