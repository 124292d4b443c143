import Fastify, { type FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { EventBus } from '../events.js';
import type { Policy } from '../policy/model.js';
import { PolicyService, type Enforcer } from '../control/policy-service.js';
import { Store } from '../store/store.js';
import { makePolicy } from '../store/test-fixtures.js';
import { API_PREFIX, registerApi } from './api.js';

/** A test API over an in-memory store: for `inject()` and for the CLI tests. Not used by the service. */
export interface TestApi {
  readonly app: FastifyInstance;
  readonly store: Store;
  readonly policy: PolicyService;
  readonly registry: Registry;
  readonly enforcer: Enforcer & { applied: Policy[]; fail: Error | undefined };
  setNow(d: Date): void;
  close(): Promise<void>;
}

export async function makeTestApi(
  options: {
    token?: string;
    policy?: Policy;
    plugins?: ReadonlyArray<(app: FastifyInstance) => Promise<void>>;
  } = {},
): Promise<TestApi> {
  let now = new Date('2026-03-01T12:00:00Z');
  const clock = (): number => now.getTime();
  const store = Store.open({ path: ':memory:', now: clock });
  store.replacePolicy(options.policy ?? makePolicy(), 'seed');
  const enforcer = {
    applied: [] as Policy[],
    fail: undefined as Error | undefined,
    async apply(next: Policy): Promise<void> {
      if (enforcer.fail) throw enforcer.fail;
      enforcer.applied.push(next);
    },
  };
  let ids = 0;
  const policy = new PolicyService({
    store,
    enforcer,
    events: new EventBus(),
    now: clock,
    newRuleId: () => `gen-${++ids}`,
  });
  await policy.start();
  const registry = new Registry();
  const app = Fastify({ logger: false });
  await app.register(registerApi, {
    prefix: API_PREFIX,
    policy,
    store,
    registry,
    token: options.token,
    now: clock,
    plugins: options.plugins,
  });
  await app.ready();
  return {
    app,
    store,
    policy,
    registry,
    enforcer,
    setNow: (d) => {
      now = d;
    },
    close: async () => {
      await app.close();
      await policy.stop();
      store.close();
    },
  };
}
