import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selfSignedCertificate } from '../auth/cert.js';
import { parseExpiry } from './auth.js';
import { fetchTrusting } from './https-fetch.js';

describe('the CLI over HTTPS with the appliance certificate', () => {
  const pair = selfSignedCertificate({ names: ['127.0.0.1'] });
  const server = createServer({ cert: pair.cert, key: pair.key }, (req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ method: req.method, authorization: req.headers.authorization }));
  });
  let url = '';

  beforeAll(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  afterAll(() => void server.close());

  it('trusts the given certificate, sending method and headers', async () => {
    const res = await fetchTrusting(pair.cert)(url, {
      method: 'POST',
      headers: { authorization: 'Bearer x' },
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ method: 'POST', authorization: 'Bearer x' });
  });

  it('refuses a server whose certificate is another one', async () => {
    const other = selfSignedCertificate({ names: ['127.0.0.1'] }).cert;
    await expect(fetchTrusting(other)(url)).rejects.toThrow(/self[- ]signed|certificate/i);
  });
});

describe('token expiry', () => {
  const now = Date.parse('2026-12-03T00:00:00Z');
  it('reads durations, dates and never', () => {
    expect(parseExpiry('90d', now)).toBe('2027-03-03T00:00:00.000Z');
    expect(parseExpiry('12h', now)).toBe('2026-12-03T12:00:00.000Z');
    expect(parseExpiry('2027-01-31', now)).toBe('2027-01-31T00:00:00.000Z');
    expect(parseExpiry('never', now)).toBeUndefined();
    expect(() => parseExpiry('soon', now)).toThrow(/at --expires/);
  });
});
