import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CaptureService } from '../capture/service.js';
import { FakeTcpdump } from '../capture/test-fakes.js';
import { PortcullisError } from '../errors.js';
import { captureRoutes } from '../http/captures.js';
import { makeTestApi, type TestApi } from '../http/test-app.js';
import { inProcessCli } from './test-cli.js';

/** `portcullis capture …` against a real API on 127.0.0.1, with a fake tcpdump. */
describe('portcullis capture', () => {
  let t: TestApi;
  let api: string;
  let dir: string;
  let captures: CaptureService;

  const cli = inProcessCli(() => api);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-cli-capture-'));
    captures = new CaptureService({
      dir,
      lanIface: 'lan0',
      policy: () => t.policy.current(),
      alerts: { get: () => undefined },
      audit: () => undefined,
      spawner: new FakeTcpdump(),
      pollMs: 20,
      registry: new Registry(),
    });
    await captures.start();
    t = await makeTestApi({ plugins: [async (s) => void (await s.register(captureRoutes, { captures }))] });
    api = await t.app.listen({ host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => {
    await captures.stop();
    await t.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts a capture, waits for its end and writes the pcap; lists and deletes it', async () => {
    const file = join(dir, 'kid.pcap');
    const out = await cli('capture', 'start', '--vm', 'kid', '--seconds', '1', '-o', file, '--json');
    const info = JSON.parse(out) as { id: string; state: string; packets: number };
    expect(info).toMatchObject({ state: 'done', packets: 3 });
    expect(readFileSync(file).readUInt32LE(0)).toBe(0xa1b2c3d4);
    expect(await cli('capture', 'list')).toMatch(new RegExp(`${info.id}\\s+kid\\s+done\\s+1\\s+3`));
    expect(await cli('capture', 'rm', info.id)).toBe(`deleted ${info.id}\n`);
    expect(JSON.parse(await cli('capture', 'list', '--json'))).toEqual([]);
  });

  it('says which option is missing before asking the API', async () => {
    const err = await cli('capture', 'start', '--vm', 'kid').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PortcullisError);
    expect((err as Error).message).toBe('say how long (at --seconds)');
  });
});
