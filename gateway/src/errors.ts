/**
 * One error type for the whole service. Callers branch on `code`, never on message text.
 * Messages say what was wrong and how to fix it.
 */

/** Every error code, grouped by area, with the HTTP status the API answers it with. */
export const ERROR_CODES = {
  // configuration and policy
  CONFIG_INVALID: 400,
  POLICY_INVALID: 400,
  VM_NOT_FOUND: 404,
  PROFILE_NOT_FOUND: 404,
  RULE_NOT_FOUND: 404,
  SCHEDULE_NOT_FOUND: 404,
  CONFLICT: 409,
  // API
  REQUEST_INVALID: 400,
  NOT_FOUND: 404,
  UNAUTHORIZED: 401,
  /** Authenticated, but the role (or a parent's scope) does not allow it; or a cross-site request. */
  FORBIDDEN: 403,
  /** The Host header names no address or name of this listener (DNS rebinding). */
  MISDIRECTED_REQUEST: 421,
  REQUEST_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  ACCESS_REQUEST_NOT_FOUND: 404,
  API_UNREACHABLE: 503,
  /** Too many requests from one guest or client in a while: a limit against floods. */
  RATE_LIMITED: 429,
  // nftables
  NFT_APPLY_FAILED: 500,
  NFT_UNAVAILABLE: 503,
  NFT_DRIFT: 500,
  // lab and processes
  LAB_FAILED: 500,
  SPAWN_FAILED: 500,
  SYSTEMD_NOTIFY: 500,
  /** A packet the service built (the block page's answer) could not be sent on a raw socket. */
  RAW_SEND_FAILED: 500,
  // suricata and EVE
  SURICATA_FAILED: 502,
  SURICATA_SOCKET: 502,
  EVE_MALFORMED: 400,
  // DNS
  DNS_LIST_INVALID: 400,
  DNS_UPSTREAM_FAILED: 502,
  DNS_LISTEN_FAILED: 500,
  // rule bundles (gateway/src/bundles/, rules/src/): what the vendor builds, what the appliance accepts
  BUNDLE_INVALID: 400,
  /** Metadata not signed by the threshold of keys its role requires (wrong key, forged, bad root rotation). */
  BUNDLE_SIGNATURE_INVALID: 400,
  /** Signed metadata past its expiry: a freeze attack, or a repository nobody re-signs. */
  BUNDLE_EXPIRED: 400,
  /** A version lower than one already trusted: metadata rollback, or a bundle not newer than the installed one. */
  BUNDLE_ROLLBACK: 409,
  /** Bytes that do not match the length, hashes or version signed metadata gives (tampering, mix-and-match). */
  BUNDLE_TAMPERED: 400,
  /** An archive entry that could escape or misuse the install folder: traversal, links, devices, odd types. */
  BUNDLE_UNSAFE_ARCHIVE: 400,
  /** Over a size limit: download, unpacked total, entry count or compression ratio (decompression bomb). */
  BUNDLE_TOO_LARGE: 413,
  /** Not a well-formed gzipped tar (truncated, bad checksum, bad gzip). */
  BUNDLE_CORRUPT: 400,
  /** manifest.json missing, malformed, or not matching the files, the target or the channel asked for. */
  BUNDLE_MANIFEST_INVALID: 400,
  /** The bundle needs a newer appliance than this one. */
  BUNDLE_INCOMPATIBLE: 409,
  /** The repository has no bundle for this name and channel. */
  BUNDLE_NOT_FOUND: 404,
  /** The repository could not be reached or read (network, HTTP status, missing folder). */
  BUNDLE_FETCH_FAILED: 502,
  /** The bundle's rules (with the SID changes) fail `suricata -T` against the running configuration. */
  BUNDLE_RULES_INVALID: 400,
  /** A list of the bundle does not parse (a bad line, a bad SafeSearch map). */
  BUNDLE_LISTS_INVALID: 400,
  /** After the switch the health check failed (rules failed, Suricata died, the queue stopped): rolled back. */
  BUNDLE_UNHEALTHY: 502,
  // packet captures (gateway/src/capture/)
  CAPTURE_NOT_FOUND: 404,
  /** Captures running at once are at their limit: wait for one to end. */
  CAPTURE_BUSY: 429,
  /** tcpdump could not start or failed, or a file is no pcap. */
  CAPTURE_FAILED: 500,
  // store
  STORE_FAILED: 500,
  BACKUP_FAILED: 500,
  BACKUP_INVALID: 400,
  INTERNAL: 500,
  // alert actions and replay
  ACTION_NOTIFY_FAILED: 502,
  REPLAY_FAILED: 500,
  // Suricata command socket: Suricata answered NOK (the socket itself works)
  SURICATA_COMMAND_REJECTED: 502,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface ErrorOptions {
  /** The error that caused this one. */
  readonly cause?: unknown;
  /** The offending field, as a JSON-pointer-like path (`/vms/2/mac`). */
  readonly path?: string;
  /** Anything else that helps the reader find the problem. */
  readonly context?: Record<string, unknown>;
}

export class PortcullisError extends Error {
  readonly code: ErrorCode;
  readonly path: string | undefined;
  readonly context: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PortcullisError';
    this.code = code;
    this.path = options.path;
    this.context = options.context;
  }

  /** The HTTP status the API answers this error with. */
  get status(): number {
    return ERROR_CODES[this.code];
  }

  toJSON(): { code: ErrorCode; message: string; path?: string } {
    return this.path === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, path: this.path };
  }
}

export function isPortcullisError(err: unknown, code?: ErrorCode): err is PortcullisError {
  return err instanceof PortcullisError && (code === undefined || err.code === code);
}

/** One problem found by a validator: where, and what is wrong there. */
export interface Issue {
  readonly path: string;
  readonly message: string;
}

/** An error that carries every problem found, not just the first. */
export function invalid(code: ErrorCode, what: string, issues: readonly Issue[]): PortcullisError {
  const first = issues[0];
  const list = issues.map((i) => `${i.path || '/'}: ${i.message}`).join('; ');
  return new PortcullisError(code, `${what}: ${list}`, {
    path: first?.path,
    context: { issues },
  });
}
