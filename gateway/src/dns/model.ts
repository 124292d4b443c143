import { Type, type Static } from 'typebox';
import { Domain } from '../policy/model.js';

/**
 * The DNS filter's model: what one client (VM) may resolve, and what the matcher
 * answers about a name. One schema source for the API, the YAML policy and the filter.
 */

/** Category lists shipped by default (rules/lists/categories/<name>.txt). Others may be added by bundles. */
export const DEFAULT_CATEGORIES = [
  'adult',
  'gambling',
  'social',
  'games',
  'streaming',
  'malware',
  'dating',
] as const;

/** Service lists shipped by default (rules/lists/services/<name>.txt). Others may be added by bundles. */
export const DEFAULT_SERVICES = [
  'youtube',
  'tiktok',
  'roblox',
  'fortnite',
  'minecraft',
  'discord',
  'instagram',
  'facebook',
  'snapchat',
  'twitter',
  'reddit',
  'twitch',
  'netflix',
  'whatsapp',
  'steam',
] as const;

/** A list name: lower-case letters, digits and dashes, like a file stem. */
export const ListName = Type.String({
  pattern: '^[a-z0-9][a-z0-9-]{0,62}$',
  description: 'list name: lower-case letters, digits and dashes (the list file name without .txt)',
});

export const YoutubeRestriction = Type.Union([Type.Literal('strict'), Type.Literal('moderate')], {
  description: 'strict: restrict.youtube.com; moderate: restrictmoderate.youtube.com',
});
export type YoutubeRestriction = Static<typeof YoutubeRestriction>;

/**
 * What one client may resolve. `identify(clientIp)` returns it for each query; return
 * the same object while the policy is unchanged (it is compiled once and memoised per
 * object).
 */
export const ClientPolicy = Type.Object(
  {
    /** The client's name (the VM name): used in hooks, the query log and metrics context. */
    client: Type.String({ minLength: 1, maxLength: 64 }),
    /** Paused or blocked: every name answers with the block page (bypass closing still applies). */
    paused: Type.Optional(Type.Boolean({ default: false })),
    /** Blocked category lists, by name (adult, gambling, social, games, streaming, malware, …). */
    categories: Type.Optional(Type.Array(ListName, { maxItems: 256, uniqueItems: true, default: [] })),
    /** Blocked service lists, by name (youtube, tiktok, roblox, fortnite, discord, instagram, …). */
    services: Type.Optional(Type.Array(ListName, { maxItems: 256, uniqueItems: true, default: [] })),
    /**
     * Always allowed (with their subdomains): wins over category, service and DoH lists,
     * and over a `deny` entry that is no more specific. SafeSearch still applies.
     */
    allow: Type.Optional(Type.Array(Domain, { maxItems: 10000, default: [] })),
    /** Always blocked (with their subdomains), unless an `allow` entry at least as specific matches. */
    deny: Type.Optional(Type.Array(Domain, { maxItems: 10000, default: [] })),
    /** Only `allow` entries resolve; everything else answers the block page. */
    allowlistOnly: Type.Optional(Type.Boolean({ default: false })),
    /** Rewrite search engines and YouTube to their safe endpoints. */
    safeSearch: Type.Optional(Type.Boolean({ default: false })),
    /** YouTube restriction level while `safeSearch` is on. Default strict. */
    youtube: Type.Optional(YoutubeRestriction),
    /** Answer known DNS-over-HTTPS endpoint names with NXDOMAIN so browsers fall back to this resolver. */
    blockDoh: Type.Optional(Type.Boolean({ default: false })),
  },
  { additionalProperties: false },
);
export type ClientPolicy = Static<typeof ClientPolicy>;

/** What the filter does with a name. */
export type VerdictAction = 'allow' | 'block' | 'rewrite' | 'nxdomain' | 'nodata';

/** Why. `paused` is the client-wide pause; the others as in the brief. */
export type VerdictReasonKind =
  | 'category'
  | 'service'
  | 'custom'
  | 'allowlist'
  | 'safesearch'
  | 'canary'
  | 'private-relay'
  | 'ddr'
  | 'doh'
  | 'paused';

export interface VerdictReason {
  readonly kind: VerdictReasonKind;
  /** The list that matched (category or service name, `doh`, `allow`/`deny` for custom entries). */
  readonly list?: string;
  /** The entry that matched: the name itself or the parent domain that is listed. */
  readonly entry?: string;
}

export interface Verdict {
  readonly action: VerdictAction;
  /** Absent only for the default allow (nothing matched). */
  readonly reason?: VerdictReason;
  /** For `rewrite`: the name to answer with as a CNAME (SafeSearch endpoint). */
  readonly target?: string;
}

/** Kinds of list the loader knows; decides which policy field selects them. */
export type ListKind = 'category' | 'service' | 'doh';
