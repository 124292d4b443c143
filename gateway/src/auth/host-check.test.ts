import { describe, expect, it } from 'vitest';
import { crossSite, hostAllowed, hostName, hostPolicy } from './host-check.js';

describe('Host and Origin checks', () => {
  const policy = hostPolicy('10.99.0.2', ['gateway.home.arpa']);

  it('answers to the listen address, configured names and loopback, with any port', () => {
    for (const host of [
      '10.99.0.2:8080',
      '10.99.0.2',
      'GATEWAY.home.arpa:8443',
      '127.0.0.1:8080',
      'localhost',
      '[::1]:8080',
    ])
      expect(hostAllowed(policy, host), host).toBe(true);
  });

  it('refuses other names (DNS rebinding) and a missing Host', () => {
    for (const host of [
      'evil.example:8080',
      'gateway.home.arpa.evil.example',
      '10.99.0.3:8080',
      '',
      undefined,
    ])
      expect(hostAllowed(policy, host), String(host)).toBe(false);
  });

  it('a wildcard listen address adds no address of its own', () => {
    expect(hostAllowed(hostPolicy('0.0.0.0'), '0.0.0.0:8080')).toBe(false);
    expect(hostAllowed(hostPolicy('0.0.0.0', ['10.0.0.5']), '10.0.0.5:8080')).toBe(true);
  });

  it('reads host names out of Host headers', () => {
    expect(hostName('[fe80::1]:443')).toBe('fe80::1');
    expect(hostName('fe80::1')).toBe('fe80::1');
    expect(hostName('Example.org.:80')).toBe('example.org');
  });

  it('tells a cross-site request from a same-origin one', () => {
    const req = { host: '10.99.0.2:8080', secure: true };
    expect(crossSite(req, undefined, undefined)).toBe(false);
    expect(crossSite(req, 'https://10.99.0.2:8080', 'same-origin')).toBe(false);
    expect(crossSite(req, 'https://evil.example', undefined)).toBe(true);
    expect(crossSite(req, 'http://10.99.0.2:8080', undefined)).toBe(true);
    expect(crossSite(req, 'null', undefined)).toBe(true);
    expect(crossSite(req, undefined, 'cross-site')).toBe(true);
    expect(crossSite(req, undefined, 'same-site')).toBe(true);
    expect(crossSite(req, undefined, 'none')).toBe(false);
  });
});
