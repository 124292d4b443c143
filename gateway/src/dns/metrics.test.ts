import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { blockCategory, DnsMetrics } from './metrics.js';

describe('DnsMetrics per VM', () => {
  it('counts each VM’s queries; a scrape adds what came since the last', async () => {
    const registry = new Registry();
    const m = new DnsMetrics(registry);
    m.clientQuery('kid');
    m.clientQuery('kid');
    m.clientQuery('work');
    const text = await registry.metrics();
    expect(text).toContain('portcullis_dns_vm_queries_total{vm="kid"} 2');
    expect(text).toContain('portcullis_dns_vm_queries_total{vm="work"} 1');
    m.clientQuery('kid');
    expect(await registry.metrics()).toContain('portcullis_dns_vm_queries_total{vm="kid"} 3');
    expect(m.totalQueries()).toBe(4);
  });

  it('names a block by its list for categories and services, else by why; allow and rewrite are no blocks', () => {
    expect(blockCategory({ action: 'block', reason: { kind: 'service', list: 'youtube' } })).toBe('youtube');
    expect(blockCategory({ action: 'block', reason: { kind: 'paused' } })).toBe('paused');
    expect(blockCategory({ action: 'block', reason: { kind: 'custom', list: 'deny' } })).toBe('custom');
    expect(blockCategory({ action: 'rewrite', reason: { kind: 'safesearch' } })).toBeUndefined();
    expect(blockCategory({ action: 'allow' })).toBeUndefined();
    expect(blockCategory(undefined)).toBeUndefined();
  });
});
