import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { policyToYaml } from '../policy/yaml.js';
import { makePolicy } from '../store/test-fixtures.js';
import { makeTestApi, type TestApi } from './test-app.js';

describe('/api/v1/policy', () => {
  let t: TestApi;
  beforeEach(async () => {
    t = await makeTestApi();
  });
  afterEach(async () => {
    await t.close();
  });

  it('exports JSON by default', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/api/v1/policy' });
    expect(res.headers['content-type']).toMatch(/application\/json/);
    expect(res.json()).toEqual(makePolicy());
  });

  it('exports YAML by ?format=yaml or by Accept', async () => {
    for (const req of [
      { url: '/api/v1/policy?format=yaml' },
      { url: '/api/v1/policy', headers: { accept: 'application/yaml' } },
    ]) {
      const res = await t.app.inject({ method: 'GET', ...req });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/yaml/);
      expect(res.body).toMatch(/^# Portcullis policy, exported 2026-03-01T12:00:00.000Z\n/);
      expect(parse(res.body)).toEqual(makePolicy());
    }
  });

  it('imports JSON as one audited change', async () => {
    const next = makePolicy({ schedules: [], vpnEndpoints: [] });
    const res = await t.app.inject({ method: 'PUT', url: '/api/v1/policy', payload: next });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual(next);
    expect(t.store.loadPolicy()).toEqual(next);
    expect(t.store.audit.list({ limit: 1 }).items[0]).toMatchObject({
      action: 'policy.import',
      actor: 'api',
    });
  });

  it('imports YAML', async () => {
    const next = makePolicy({ ipv6: false });
    const res = await t.app.inject({
      method: 'PUT',
      url: '/api/v1/policy',
      headers: { 'content-type': 'application/yaml' },
      payload: policyToYaml(next),
    });
    expect(res.statusCode).toBe(200);
    expect(t.store.loadPolicy().ipv6).toBe(false);
  });

  it('rejects an invalid policy whole, naming every problem in the body', async () => {
    const bad = makePolicy();
    bad.vms[1]!.mac = bad.vms[0]!.mac;
    bad.updateServers = ['10.0.0.1/8'];
    const res = await t.app.inject({ method: 'PUT', url: '/api/v1/policy', payload: bad });
    expect(res.statusCode).toBe(400);
    const body = res.json<{ code: string; path: string; issues: { path: string }[] }>();
    expect(body.code).toBe('POLICY_INVALID');
    expect(body.path).toBe('/body/vms/1/mac');
    expect(body.issues.map((i) => i.path)).toEqual(['/body/vms/1/mac', '/body/updateServers/0']);
    expect(t.store.loadPolicy()).toEqual(makePolicy());
  });

  it('rejects a schema violation and bad JSON', async () => {
    const res = await t.app.inject({ method: 'PUT', url: '/api/v1/policy', payload: { vms: 'many' } });
    expect(res.statusCode).toBe(400);
    const body = res.json<{ code: string; issues: { path: string }[] }>();
    expect(body.code).toBe('POLICY_INVALID');
    expect(body.issues.map((i) => i.path)).toEqual(expect.arrayContaining(['/body/vms', '/body/profiles']));
    const broken = await t.app.inject({
      method: 'PUT',
      url: '/api/v1/policy',
      headers: { 'content-type': 'application/json' },
      payload: '{"vms": [',
    });
    expect(broken.json()).toMatchObject({ code: 'REQUEST_INVALID', path: '/body' });
  });

  it('rejects bad YAML with line and column', async () => {
    const res = await t.app.inject({
      method: 'PUT',
      url: '/api/v1/policy',
      headers: { 'content-type': 'application/yaml' },
      payload: 'vms:\n  - name: kid\n   mac: x\n',
    });
    expect(res.statusCode).toBe(400);
    const body = res.json<{ code: string; path: string; issues: { line: number; message: string }[] }>();
    expect(body.code).toBe('POLICY_INVALID');
    expect(body.path).toBe('/body');
    expect(body.issues[0]?.message).toMatch(/YAML syntax error at line \d+, column \d+/);
    expect(body.issues[0]?.line).toBeGreaterThan(0);
  });

  it('names the line of a bad field in YAML', async () => {
    const text = policyToYaml(makePolicy()).replace('203.0.113.0/24', '203.0.113.1/24');
    const res = await t.app.inject({
      method: 'PUT',
      url: '/api/v1/policy',
      headers: { 'content-type': 'text/yaml' },
      payload: text,
    });
    const body = res.json<{ path: string; issues: { path: string; line: number }[] }>();
    expect(body.path).toBe('/body/vms/0/rules/0/to/cidr');
    expect(text.split('\n')[body.issues[0]!.line - 1]).toContain('203.0.113.1/24');
  });
});

describe('/api/v1/settings', () => {
  let t: TestApi;
  beforeEach(async () => {
    t = await makeTestApi();
  });
  afterEach(async () => {
    await t.close();
  });

  it('shows and changes settings', async () => {
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/settings' })).json()).toEqual({
      vpnEndpoints: ['198.51.100.7'],
      updateServers: ['192.0.2.0/24'],
      deny: ['203.0.113.66'],
      ipv6: true,
    });
    const res = await t.app.inject({
      method: 'PATCH',
      url: '/api/v1/settings',
      payload: { ipv6: false, deny: null },
    });
    expect(res.json()).toEqual({
      vpnEndpoints: ['198.51.100.7'],
      updateServers: ['192.0.2.0/24'],
      ipv6: false,
    });
    const bad = await t.app.inject({
      method: 'PATCH',
      url: '/api/v1/settings',
      payload: { vpnEndpoints: ['1.2.3.4/33'] },
    });
    expect(bad.json()).toMatchObject({ code: 'POLICY_INVALID', path: '/body/vpnEndpoints/0' });
  });
});
