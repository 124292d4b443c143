import { writeFileSync } from 'node:fs';
import type { FastifyPluginAsync } from 'fastify';
import { Type } from 'typebox';
import { createBackup, pendingRestorePath, readBackup, summarize } from '../backup/backup.js';
import { PortcullisError } from '../errors.js';
import type { Logger } from '../log.js';
import { doc } from './route-helpers.js';

/** Options of `backupRoutes`. */
export interface BackupRoutesOptions {
  /** The data folder: the database, keys and state files. */
  readonly dataDir: string;
  /** The service's configuration file, included in a backup. */
  readonly configFile?: string | undefined;
  /**
   * Restart the service so that it applies a staged restore at its start (under
   * systemd: stop; `Restart=always` starts it again). Absent: the restore waits for the
   * next start.
   */
  readonly restart?: (() => void) | undefined;
  /** Largest backup accepted, bytes. Default 256 MiB. */
  readonly bodyLimit?: number;
  readonly log?: Logger;
}

const BackupSummary = Type.Object({
  createdAt: Type.String(),
  schemaVersion: Type.Integer(),
  dbBytes: Type.Integer(),
  config: Type.Boolean({ description: 'whether the backup holds the config file (the CLI restores it)' }),
  dataFiles: Type.Array(Type.String()),
});

const RestoreAnswer = Type.Object({
  ...BackupSummary.properties,
  staged: Type.Literal(true),
  restarting: Type.Boolean({ description: 'the service restarts now to apply it; else at its next start' }),
});

const BACKUP_TYPES = ['application/gzip', 'application/octet-stream'];

/**
 * `/backup`: the whole configuration as one file, and
 * `/backup/restore`: a backup checked in full (bad files change nothing: 400
 * BACKUP_INVALID), staged in the data folder and applied when the service starts again,
 * before it opens its database. The config file is restored by `portcullis restore`
 * only: /etc is read-only for the service. Who may: admins only (a backup holds every
 * secret), decided by the management gate like every route (auth/access.ts).
 */
export const backupRoutes: FastifyPluginAsync<BackupRoutesOptions> = async (app, opts) => {
  const bodyLimit = opts.bodyLimit ?? 256 << 20;
  app.addContentTypeParser(BACKUP_TYPES, { parseAs: 'buffer', bodyLimit }, (_req, body, done) =>
    done(null, body),
  );

  app.get(
    '/backup',
    {
      schema: doc(
        {
          tags: ['backup'],
          summary: 'Download a backup of the whole configuration (database, config, keys); admins only',
          produces: ['application/gzip'],
        },
        {},
      ),
    },
    async (_req, reply) => {
      const file = await createBackup({ dataDir: opts.dataDir, configFile: opts.configFile });
      const stamp = new Date().toISOString().replace(/[:.]/g, '-');
      return reply
        .header('content-type', 'application/gzip')
        .header('content-disposition', `attachment; filename="portcullis-${stamp}.pcbak"`)
        .header('cache-control', 'no-store')
        .send(file);
    },
  );

  app.post(
    '/backup/restore',
    {
      bodyLimit,
      schema: doc(
        {
          tags: ['backup'],
          summary: 'Restore a backup: checked first, then applied by a restart of the service',
          consumes: BACKUP_TYPES,
        },
        { response: { 202: RestoreAnswer } },
      ),
    },
    async (req, reply) => {
      if (!Buffer.isBuffer(req.body))
        throw new PortcullisError(
          'REQUEST_INVALID',
          `send the backup file as the body, with content-type ${BACKUP_TYPES.join(' or ')}`,
        );
      const summary = summarize(readBackup(req.body));
      writeFileSync(pendingRestorePath(opts.dataDir), req.body, { mode: 0o600 });
      const restarting = opts.restart !== undefined;
      opts.log?.warn(
        { ...summary, restarting },
        'a restore is staged; it is applied when the service starts',
      );
      if (opts.restart) {
        const restart = opts.restart;
        reply.raw.once('finish', () => setTimeout(restart, 200));
      }
      return reply.code(202).send({ ...summary, staged: true as const, restarting });
    },
  );
};
