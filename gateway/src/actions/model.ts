import { Type, type Static } from 'typebox';
import { invalid, type Issue } from '../errors.js';
import { schemaIssues } from '../schema.js';

/**
 * What a profile does when Suricata raises an alert for one of its VMs. One schema
 * source: the policy model references {@link AlertActions} from a profile, the API and
 * the YAML file validate with it. Every alert is always recorded; the parts below add
 * reactions. Suricata severity runs from 1 (most severe) upwards; 3 is its default.
 */

export const Severity = Type.Integer({
  minimum: 1,
  maximum: 255,
  description: 'Suricata severity; 1 is the most severe, 3 is the default for rules without a priority',
});

export const BlockAction = Type.Object(
  {
    /** Alerts with severity ≤ this block their remote host. */
    maxSeverity: Severity,
    /** How long the remote host stays blocked, in seconds: 1 to 2,592,000 (30 days). */
    duration: Type.Integer({
      minimum: 1,
      maximum: 2_592_000,
      description: 'seconds the remote host stays blocked',
    }),
    /**
     * Signature ids whose alerts block the remote host for every VM (a known
     * command-and-control host, say). Every other alert blocks it only for the VM whose
     * traffic raised it. Default none.
     */
    globalSids: Type.Optional(
      Type.Array(Type.Integer({ minimum: 1 }), {
        maxItems: 10_000,
        description:
          'alerts of these signatures block the remote host for every VM; others only for the alerting VM',
      }),
    ),
  },
  { additionalProperties: false, description: 'block the remote host of an alert for a while' },
);
export type BlockAction = Static<typeof BlockAction>;

export const QuarantineAction = Type.Object(
  {
    /** Only alerts with severity ≤ this count towards quarantine. */
    maxSeverity: Severity,
    /** Alerts needed within the window: 1 to 10,000. */
    count: Type.Integer({
      minimum: 1,
      maximum: 10_000,
      description: 'alerts within the window that quarantine the VM',
    }),
    /** The sliding window, in minutes: 1 to 10,080 (a week). */
    windowMinutes: Type.Integer({ minimum: 1, maximum: 10_080, description: 'sliding window, minutes' }),
  },
  { additionalProperties: false, description: 'quarantine a VM after repeated alerts' },
);
export type QuarantineAction = Static<typeof QuarantineAction>;

export const NotifyAction = Type.Object(
  {
    /** Webhook that receives a JSON POST per notification. */
    url: Type.String({ pattern: '^https?://[^\\s]+$', maxLength: 2000, description: 'http(s) webhook URL' }),
    /** Alerts with severity ≤ this notify; quarantines always do. Default 1. */
    maxSeverity: Type.Optional(Severity),
    /** At most one notification per VM and signature per this many seconds: 0 to 86,400. Default 300. */
    minInterval: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 86_400,
        description: 'seconds between notifications of one signature for one VM',
      }),
    ),
  },
  { additionalProperties: false, description: 'notify a webhook (the parent, the admin)' },
);
export type NotifyAction = Static<typeof NotifyAction>;

export const AlertActions = Type.Object(
  {
    block: Type.Optional(BlockAction),
    quarantine: Type.Optional(QuarantineAction),
    notify: Type.Optional(NotifyAction),
  },
  {
    additionalProperties: false,
    description: 'reactions to Suricata alerts; every alert is always recorded',
  },
);
export type AlertActions = Static<typeof AlertActions>;

/** Record only. */
export const RECORD_ONLY: AlertActions = {};

/**
 * Alert actions for the built-in profiles, by profile name, until profiles carry their
 * own: `kid` reacts hardest (inline IPS, a child's VM), `quarantine` and `open` record.
 */
export const BUILTIN_ALERT_ACTIONS: Readonly<Record<string, AlertActions>> = {
  open: RECORD_ONLY,
  'internet-only': {
    block: { maxSeverity: 1, duration: 3600 },
    quarantine: { maxSeverity: 1, count: 10, windowMinutes: 10 },
  },
  work: {
    block: { maxSeverity: 1, duration: 3600 },
    quarantine: { maxSeverity: 1, count: 10, windowMinutes: 10 },
  },
  kid: {
    block: { maxSeverity: 2, duration: 86_400 },
    quarantine: { maxSeverity: 2, count: 3, windowMinutes: 10 },
  },
  quarantine: RECORD_ONLY,
};

/** Used when nothing is configured: block severity 1 for an hour, quarantine after 5 within 10 minutes. */
export const DEFAULT_ALERT_ACTIONS: AlertActions = {
  block: { maxSeverity: 1, duration: 3600 },
  quarantine: { maxSeverity: 1, count: 5, windowMinutes: 10 },
};

/** Every problem of an alert-actions value, as `{path, message}`; empty when valid. */
export function checkAlertActions(input: unknown): Issue[] {
  return schemaIssues(AlertActions, input, 20).map((i) => ({ path: i.path || '/', message: i.message }));
}

/** The value as AlertActions, or a CONFIG_INVALID error listing every problem. */
export function parseAlertActions(input: unknown, what = 'alert actions'): AlertActions {
  const issues = checkAlertActions(input);
  if (issues.length > 0) throw invalid('CONFIG_INVALID', what, issues);
  return input as AlertActions;
}
