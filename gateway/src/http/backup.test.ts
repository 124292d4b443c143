import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DB_FILE, pendingRestorePath, readBackup } from '../backup/backup.js';
import { Store } from '../store/store.js';
import { makePolicy } from '../store/test-fixtures.js';
import { backupRoutes } from './backup.js';
import { makeTestApi, type TestApi } from './test-app.js';

let dir: string;
let api: TestApi;
let restarts: number;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'backup-route-'));
  mkdirSync(join(dir, 'keys'));
  // the installation's database, as the service keeps it in its data folder
  const store = Store.open({ path: join(dir, DB_FILE) });
  store.replacePolicy(makePolicy(), 'seed');
  store.close();
  restarts = 0;
  // who may (admins only) is the management gate's decision: see auth.test.ts
  api = await makeTestApi({
    plugins: [
      async (scope) => {
        await scope.register(backupRoutes, { dataDir: dir, restart: () => (restarts += 1) });
      },
    ],
  });
});

afterEach(async () => {
  await api.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('/api/v1/backup', () => {
  it('gives the whole configuration as one file', async () => {
    const res = await api.app.inject({ method: 'GET', url: '/api/v1/backup' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/gzip');
    expect(res.headers['content-disposition']).toMatch(/^attachment; filename="portcullis-.*\.pcbak"$/);
    expect(readBackup(res.rawPayload).schemaVersion).toBeGreaterThan(0);
  });

  it('stages a good backup and restarts the service to apply it', async () => {
    const file = (await api.app.inject({ method: 'GET', url: '/api/v1/backup' })).rawPayload;
    const res = await api.app.inject({
      method: 'POST',
      url: '/api/v1/backup/restore',
      headers: { 'content-type': 'application/gzip' },
      payload: file,
    });
    expect(res.statusCode, res.body).toBe(202);
    expect(res.json()).toMatchObject({ staged: true, restarting: true, config: false });
    expect(readFileSync(pendingRestorePath(dir)).equals(file)).toBe(true);
    await new Promise((r) => setTimeout(r, 400));
    expect(restarts).toBe(1);
  });

  it('refuses a bad file with 400 BACKUP_INVALID and stages nothing', async () => {
    const res = await api.app.inject({
      method: 'POST',
      url: '/api/v1/backup/restore',
      headers: { 'content-type': 'application/octet-stream' },
      payload: Buffer.from('this is not a backup'),
    });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({
      code: 'BACKUP_INVALID',
      message: expect.stringMatching(/nothing was changed/),
    });
    expect(existsSync(pendingRestorePath(dir))).toBe(false);
    expect(restarts).toBe(0);
  });
});
