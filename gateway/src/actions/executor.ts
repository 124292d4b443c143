import { PortcullisError } from '../errors.js';
import type { EventBus } from '../events.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import type { Decision, NotifyPayload, RecordDecision } from './engine.js';

/**
 * Carrying decisions out. The engine decides; an executor acts: nftables set elements
 * with timeouts for blocks, the policy's quarantine flag, webhooks. The service wires the
 * real one; tests pass a fake.
 */
export interface ActionExecutor {
  /**
   * Block `remote` for `seconds` (refreshing the timeout if it is blocked already):
   * for `vm`, the VM whose alert asked for it, or for every VM when `global`.
   */
  blockHost(remote: string, seconds: number, vm?: string, global?: boolean): Promise<void>;
  /** Put `vm` into quarantine. */
  quarantine(vm: string, reason: string): Promise<void>;
  /** POST `payload` to the webhook `url`. */
  notify(url: string, payload: NotifyPayload): Promise<void>;
  /** Store the alert (alert log); optional. */
  record?(decision: RecordDecision): Promise<void>;
}

/** Carry out one decision with `executor`. Rejects with the executor's error. */
export async function execute(decision: Decision, executor: ActionExecutor): Promise<void> {
  switch (decision.kind) {
    case 'record':
      await executor.record?.(decision);
      return;
    case 'block':
      await executor.blockHost(decision.remote, decision.seconds, decision.vm, decision.global ?? false);
      return;
    case 'quarantine':
      await executor.quarantine(decision.vm, decision.reason);
      return;
    case 'notify':
      await executor.notify(decision.url, decision.payload);
      return;
  }
}

export interface WebhookNotifierOptions {
  /** Give up after this many ms. Default 5,000. */
  readonly timeoutMs?: number;
  /** The fetch to use; default the global one. */
  readonly fetch?: typeof fetch;
  /** Sent as User-Agent. Default `portcullis`. */
  readonly userAgent?: string;
}

/** Sends notifications as JSON POSTs with a timeout. */
export class WebhookNotifier {
  readonly #timeoutMs: number;
  readonly #fetch: typeof fetch;
  readonly #userAgent: string;

  constructor(options: WebhookNotifierOptions = {}) {
    this.#timeoutMs = options.timeoutMs ?? 5000;
    this.#fetch = options.fetch ?? fetch;
    this.#userAgent = options.userAgent ?? 'portcullis';
  }

  /**
   * POST `payload` as JSON to `url`. Rejects with ACTION_NOTIFY_FAILED on a network
   * error, a timeout, or a status other than 2xx.
   */
  async notify(url: string, payload: NotifyPayload): Promise<void> {
    let res: Response;
    try {
      res = await this.#fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': this.#userAgent },
        body: JSON.stringify(payload),
        signal: AbortSignal.timeout(this.#timeoutMs),
        redirect: 'error',
      });
    } catch (err) {
      const timedOut = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
      throw new PortcullisError(
        'ACTION_NOTIFY_FAILED',
        timedOut
          ? `webhook ${redact(url)} did not answer within ${this.#timeoutMs} ms`
          : `webhook ${redact(url)} failed: ${(err as Error).message}`,
        { cause: err },
      );
    }
    // Drain the body so the connection can be reused.
    await res.arrayBuffer().catch(() => undefined);
    if (!res.ok)
      throw new PortcullisError(
        'ACTION_NOTIFY_FAILED',
        `webhook ${redact(url)} answered ${res.status}; expected 2xx`,
        { context: { status: res.status } },
      );
  }
}

/** A URL without credentials or query (tokens often live there), for messages. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '<invalid url>';
  }
}

export interface WebhookSubscriberOptions {
  /** Sends the POSTs. Default a {@link WebhookNotifier} with its defaults. */
  readonly notifier?: Pick<WebhookNotifier, 'notify'>;
  readonly log?: Logger;
}

/**
 * Webhooks as a subscriber of the event bus: every `notify` decision (`ips.decision`)
 * is POSTed, off the hot path, and its outcome published as `ips.action`. Returns the
 * unsubscribe function (call it at stop).
 */
export function subscribeWebhooks(events: EventBus, options: WebhookSubscriberOptions = {}): () => void {
  const notifier = options.notifier ?? new WebhookNotifier();
  const log = options.log ?? silentLogger;
  const owner = { subscriber: 'webhooks' };
  events.on(owner, 'ips.decision', (decision) => {
    if (decision.kind !== 'notify') return;
    notifier.notify(decision.url, decision.payload).then(
      () => {
        log.info({ decision }, 'IPS action');
        events.emit('ips.action', { decision, ok: true });
      },
      (err: unknown) => {
        log.warn({ err, decision: decision.kind }, 'IPS action failed');
        events.emit('ips.action', { decision, ok: false, error: (err as Error).message });
      },
    );
  });
  return () => events.off(owner);
}
