import { Type } from 'typebox';
import type { FastifyPluginAsync } from 'fastify';
import { PortcullisError } from '../errors.js';
import type { BundleService } from '../bundles/service.js';
import type { BundleSettings } from '../bundles/settings.js';
import { mutationContext } from './route-helpers.js';

/**
 * Vendor rule updates: the bundle in force and its history, an update or a rollback on
 * demand (the CLI shows progress by reading `GET /bundles` meanwhile), and the admin's SID
 * changes and extra rule sources (trusted by their pinned sha256 only).
 */
export const bundleRoutes: FastifyPluginAsync<{ bundles: BundleService | undefined }> = async (app, opts) => {
  const bundles = (): BundleService => {
    if (!opts.bundles)
      throw new PortcullisError(
        'CONFIG_INVALID',
        'rule updates are not configured in this service (bundles.source and bundles.trustedRoot)',
      );
    return opts.bundles;
  };

  app.get('/bundles', async () => {
    const b = bundles();
    const settings = await b.settings();
    return {
      ...(await b.status()),
      history: b.history(),
      sids: settings.sids,
      sources: settings.sources.map((s) => ({ ...s, trust: 'sha256 pinned by an admin (not signed)' })),
    };
  });

  app.get('/bundles/history', async () => bundles().history());

  app.post('/bundles/update', async (req) => bundles().update(mutationContext(req).actor));

  app.post<{ Body: { version?: number } | undefined }>(
    '/bundles/rollback',
    {
      schema: {
        body: Type.Optional(
          Type.Object(
            { version: Type.Optional(Type.Integer({ minimum: 1 })) },
            { additionalProperties: false },
          ),
        ),
      },
    },
    async (req) => bundles().rollback(mutationContext(req).actor, req.body?.version),
  );

  const SidChange = Type.Object(
    {
      action: Type.Union([
        Type.Literal('enable'),
        Type.Literal('disable'),
        Type.Literal('drop'),
        Type.Literal('modify'),
      ]),
      match: Type.String({
        minLength: 1,
        maxLength: 500,
        description: '<sid>, group:<source> or re:<pattern>',
      }),
      from: Type.Optional(Type.String({ maxLength: 500 })),
      to: Type.Optional(Type.String({ maxLength: 500 })),
    },
    { additionalProperties: false },
  );
  const Source = Type.Object(
    {
      name: Type.String({ minLength: 1, maxLength: 64 }),
      location: Type.String({ minLength: 1, maxLength: 2048 }),
      sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
    },
    { additionalProperties: false },
  );

  app.get('/bundles/settings', async () => bundles().settings());

  app.put<{ Body: BundleSettings }>(
    '/bundles/settings',
    {
      schema: {
        body: Type.Object(
          {
            sids: Type.Array(SidChange, { maxItems: 10_000 }),
            sources: Type.Array(Source, { maxItems: 50 }),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (req) => bundles().changeSettings(mutationContext(req).actor, req.body),
  );
};
