import { Type, type Static } from 'typebox';
import {
  Cidr,
  Domain,
  Ipv4,
  Ipv6,
  Mac,
  Name,
  Policy,
  Port,
  Profile,
  Rule,
  Schedule,
  Vm,
} from '../policy/model.js';
import { AccessRequest, AccessRequestStatus, AuditRecord } from '../store/types.js';

/**
 * Request and response schemas of the API, built from the policy model's schemas so
 * the model stays the one source. Used for validation, the OpenAPI document and types.
 */

/** Every error answer. */
export const ErrorResponse = Type.Object(
  {
    code: Type.String({ description: 'machine-readable error code, e.g. POLICY_INVALID' }),
    message: Type.String({ description: 'what was wrong and how to fix it' }),
    path: Type.Optional(Type.String({ description: 'JSON pointer to the offending field, e.g. /body/mac' })),
    issues: Type.Optional(
      Type.Array(
        Type.Object({
          path: Type.String(),
          message: Type.String(),
          line: Type.Optional(Type.Integer()),
          col: Type.Optional(Type.Integer()),
        }),
        { description: 'every problem found, for validation errors' },
      ),
    ),
  },
  { additionalProperties: false },
);
export type ErrorResponse = Static<typeof ErrorResponse>;

export const NameParams = Type.Object({ name: Name }, { additionalProperties: false });
export const RuleParams = Type.Object(
  { name: Name, id: Type.String({ pattern: '^[a-zA-Z0-9_-]{1,64}$' }) },
  { additionalProperties: false },
);
export const IdParams = Type.Object({ id: Type.Integer({ minimum: 1 }) }, { additionalProperties: false });

/** A VM as created through the API: quarantine has its own routes. (Omit keeps no options: closed again here.) */
export const VmInput = Type.Omit(Vm, ['quarantine'], { additionalProperties: false });

/** A change to a VM; `null` removes an optional field. Name, rules and quarantine have their own routes. */
export const VmPatch = Type.Object(
  {
    mac: Type.Optional(Mac),
    ipv4: Type.Optional(Ipv4),
    ipv6: Type.Optional(Type.Union([Ipv6, Type.Null()])),
    /** Move the VM to another port (`null`: no port, identified by MAC and IPv4 alone). */
    port: Type.Optional(Type.Union([Port, Type.Null()])),
    profile: Type.Optional(Name),
    owner: Type.Optional(Type.Union([Name, Type.Null()])),
    notes: Type.Optional(Type.Union([Type.String({ maxLength: 500 }), Type.Null()])),
  },
  { additionalProperties: false, minProperties: 1 },
);

export const QuarantineBody = Type.Object(
  {
    reason: Type.String({
      minLength: 1,
      maxLength: 500,
      description: 'why, for the audit log and the owner',
    }),
  },
  { additionalProperties: false },
);

export const ProfileView = Type.Object(
  { ...Profile.properties, builtin: Type.Boolean({ description: 'built-in profiles are read-only' }) },
  { additionalProperties: false },
);

export const RuleQuery = Type.Object(
  {
    position: Type.Optional(
      Type.Integer({ minimum: 0, description: 'insert before this index; default: at the end' }),
    ),
  },
  { additionalProperties: false },
);

export const Settings = Type.Object(
  {
    vpnEndpoints: Policy.properties.vpnEndpoints,
    updateServers: Policy.properties.updateServers,
    deny: Policy.properties.deny,
    ipv6: Policy.properties.ipv6,
  },
  { additionalProperties: false },
);

export const SettingsPatch = Type.Object(
  {
    vpnEndpoints: Type.Optional(Type.Array(Cidr, { maxItems: 1024 })),
    updateServers: Type.Optional(Type.Array(Cidr, { maxItems: 1024 })),
    deny: Type.Optional(
      Type.Union([Type.Array(Cidr), Type.Null()], { description: 'null removes the global deny list' }),
    ),
    ipv6: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false, minProperties: 1 },
);

export const PolicyQuery = Type.Object(
  { format: Type.Optional(Type.Union([Type.Literal('json'), Type.Literal('yaml')])) },
  { additionalProperties: false },
);

export const AuditQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
    before: Type.Optional(Type.Integer({ minimum: 1, description: "the previous page's nextBefore" })),
    actor: Type.Optional(Type.String({ maxLength: 200 })),
    action: Type.Optional(Type.String({ maxLength: 200 })),
    target: Type.Optional(
      Type.String({ maxLength: 200, description: 'exact, or a prefix ending in / (vm/)' }),
    ),
  },
  { additionalProperties: false },
);

export const AuditPage = Type.Object(
  { items: Type.Array(AuditRecord), nextBefore: Type.Optional(Type.Integer()) },
  { additionalProperties: false },
);

export const AccessRequestCreate = Type.Object(
  {
    vm: Name,
    domain: Type.Optional(Domain),
    url: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 2048,
        description: 'the blocked URL; its host is the domain asked for',
      }),
    ),
    reason: Type.Optional(Type.String({ maxLength: 500 })),
  },
  { additionalProperties: false },
);

export const AccessRequestQuery = Type.Object(
  {
    status: Type.Optional(AccessRequestStatus),
    vm: Type.Optional(Name),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
  },
  { additionalProperties: false },
);

export const ApproveBody = Type.Object(
  {
    minutes: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 525_600, description: 'approve for this long' }),
    ),
    always: Type.Optional(Type.Literal(true, { description: 'approve without end' })),
  },
  { additionalProperties: false, minProperties: 1, maxProperties: 1 },
);

export const DenyBody = Type.Object(
  { reason: Type.Optional(Type.String({ maxLength: 500 })) },
  { additionalProperties: false },
);

export const Health = Type.Object(
  {
    status: Type.Union([Type.Literal('ok'), Type.Literal('degraded')]),
    store: Type.Union([Type.Literal('ok'), Type.Literal('failed')]),
    vms: Type.Integer({ minimum: 0 }),
    quarantined: Type.Integer({ minimum: 0 }),
  },
  { additionalProperties: false },
);

/** Schemas the OpenAPI document names under `components/schemas`. */
export const NAMED_SCHEMAS = {
  Error: ErrorResponse,
  Policy,
  Vm,
  VmInput,
  VmPatch,
  Profile,
  ProfileView,
  Rule,
  Schedule,
  Settings,
  SettingsPatch,
  AuditRecord,
  AuditPage,
  AccessRequest,
  Health,
} as const;
