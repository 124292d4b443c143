import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { blockCategory, DnsMetrics } from './metrics.js';

describe('DnsMetrics per VM', () => {
  it('counts each VM’s queries, and its blocks by category', async () => {
    const registry = new Registry();
    const m = new DnsMetrics(registry);
    m.clientQuery('kid', { action: 'allow' });
    m.clientQuery('kid', {
      action: 'block',
      reason: { kind: 'category', list: 'gambling', entry: 'bet.example' },
    });
    m.clientQuery('kid', { action: 'nxdomain', reason: { kind: 'doh', list: 'doh', entry: 'dns.google' } });
    m.clientQuery('work', undefined);
    const text = await registry.metrics();
    expect(text).toContain('portcullis_dns_vm_queries_total{vm="kid"} 3');
    expect(text).toContain('portcullis_dns_vm_queries_total{vm="work"} 1');
    expect(text).toContain('portcullis_dns_vm_blocks_total{vm="kid",category="gambling"} 1');
    expect(text).toContain('portcullis_dns_vm_blocks_total{vm="kid",category="doh"} 1');
    expect(text).not.toContain('portcullis_dns_vm_blocks_total{vm="work"');
    // the next scrape adds only what came since
    m.clientQuery('kid', { action: 'allow' });
    expect(await registry.metrics()).toContain('portcullis_dns_vm_queries_total{vm="kid"} 4');
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
