import { Type, type Static } from 'typebox';
import { Domain, Name, Timestamp } from '../policy/model.js';

/**
 * Records the store keeps besides the policy, as TypeBox schemas: the same schemas
 * describe the rows the repositories return and the API's responses.
 */

/** One audit log entry: who did what to which thing, when, with the state before and after. */
export const AuditRecord = Type.Object(
  {
    id: Type.Integer({ minimum: 1 }),
    at: Timestamp,
    actor: Type.String({ description: 'who: `api`, `cli:alice`, `sweeper`, `ips` …' }),
    action: Type.String({ description: 'what, e.g. `vm.add`, `rule.remove`, `policy.import`' }),
    target: Type.String({ description: 'which thing, e.g. `vm/kid`, `policy`' }),
    reason: Type.Optional(Type.String()),
    before: Type.Optional(Type.Unknown({ description: 'state before; absent for creations' })),
    after: Type.Optional(Type.Unknown({ description: 'state after; absent for deletions' })),
  },
  { additionalProperties: false },
);
export type AuditRecord = Static<typeof AuditRecord>;

/** What a mutation tells the audit log; `id` and `at` are the store's. */
export interface AuditInput {
  readonly actor: string;
  readonly action: string;
  readonly target: string;
  readonly reason?: string | undefined;
  readonly before?: unknown;
  readonly after?: unknown;
}

export const AccessRequestStatus = Type.Union([
  Type.Literal('pending'),
  Type.Literal('approved'),
  Type.Literal('denied'),
]);
export type AccessRequestStatus = Static<typeof AccessRequestStatus>;

/** A guest's request to reach something its policy blocks. */
export const AccessRequest = Type.Object(
  {
    id: Type.Integer({ minimum: 1 }),
    vm: Name,
    domain: Domain,
    url: Type.Optional(Type.String({ maxLength: 2048 })),
    reason: Type.Optional(Type.String({ maxLength: 500 })),
    status: AccessRequestStatus,
    createdAt: Timestamp,
    decidedBy: Type.Optional(Type.String()),
    decidedAt: Type.Optional(Timestamp),
    /** Approved until then; absent on an approval without end ("always"). */
    until: Type.Optional(Timestamp),
    /** The VM rule an approval created. */
    ruleId: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);
export type AccessRequest = Static<typeof AccessRequest>;

/** A recent IPS alert, as kept for the dashboard. */
export const Alert = Type.Object(
  {
    id: Type.Integer({ minimum: 1 }),
    at: Timestamp,
    vm: Type.Optional(Type.String()),
    src: Type.Optional(Type.String()),
    dest: Type.Optional(Type.String()),
    proto: Type.Optional(Type.String()),
    signatureId: Type.Optional(Type.Integer()),
    signature: Type.String(),
    category: Type.Optional(Type.String()),
    severity: Type.Optional(Type.Integer()),
    action: Type.Optional(Type.String({ description: 'allowed, blocked …' })),
    data: Type.Optional(Type.Unknown()),
  },
  { additionalProperties: false },
);
export type Alert = Static<typeof Alert>;
export type AlertInput = Omit<Alert, 'id'>;

export const BundleStatus = Type.Union([
  Type.Literal('installed'),
  Type.Literal('active'),
  Type.Literal('failed'),
  Type.Literal('rolled-back'),
  Type.Literal('superseded'),
]);
export type BundleStatus = Static<typeof BundleStatus>;

/** One rule bundle the appliance installed. */
export const Bundle = Type.Object(
  {
    version: Type.String({ minLength: 1, maxLength: 64 }),
    sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
    installedAt: Timestamp,
    status: BundleStatus,
    detail: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);
export type Bundle = Static<typeof Bundle>;

/** A page of records, newest first; pass `nextBefore` as `before` for the next page. */
export interface Page<T> {
  readonly items: T[];
  readonly nextBefore?: number;
}
