/**
 * The DNS filter, as a library: the service builds a `DnsFilter` with its options and
 * hooks, starts it, and feeds `onResolved` into per-VM nftables sets.
 */
export { DnsFilter } from './server.js';
export type {
  BlockedEvent,
  DnsFilterOptions,
  DnsFilterStatus,
  ListenAddress,
  ListLoadReport,
  ResolvedEvent,
} from './server.js';
export { ClientPolicy, DEFAULT_CATEGORIES, DEFAULT_SERVICES } from './model.js';
export type { ListKind, Verdict, VerdictAction, VerdictReason, VerdictReasonKind } from './model.js';
export { NameMatcher, normaliseDomain } from './matcher.js';
export { DomainIndex } from './domain-index.js';
export type { IndexedList } from './domain-index.js';
export { listFromText, listSourcesFromDir, loadListSources, parseListFile } from './lists.js';
export type { ListParseOptions, ListSource } from './lists.js';
export { DEFAULT_SAFESEARCH_TARGETS, SafeSearch } from './safesearch.js';
export type { SafeSearchTargets } from './safesearch.js';
export type { CacheOptions } from './cache.js';
export type { UpstreamServer } from './upstream.js';
export type { QueryAction, QueryLogEntry } from './query-log.js';
