import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { rejection } from '../test-helpers.js';
import { commandsInFlight, SuricataControl } from './control.js';

/**
 * A stand-in for Suricata's unix-manager: reads newline-terminated JSON messages and
 * answers each through `answer` (raw text, written as given; undefined: no answer).
 */
class FakeSuricata {
  readonly received: unknown[] = [];
  answer: (msg: Record<string, unknown>, socket: Socket) => string | undefined = (msg) =>
    'version' in msg
      ? '{"return":"OK"}\n'
      : `${JSON.stringify({ return: 'OK', message: `did ${String(msg.command)}` })}\n`;
  readonly #server: Server;

  constructor(readonly path: string) {
    this.#server = createServer((socket) => {
      let buf = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => {
        buf += chunk;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const msg = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>;
          buf = buf.slice(nl + 1);
          this.received.push(msg);
          const out = this.answer(msg, socket);
          if (out !== undefined) socket.write(out);
        }
      });
      socket.on('error', () => undefined);
    });
  }

  listen(): Promise<void> {
    return new Promise((resolve) => this.#server.listen(this.path, resolve));
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

describe('SuricataControl', () => {
  let dir: string;
  let fake: FakeSuricata;
  let control: SuricataControl;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'suricata-control-'));
    fake = new FakeSuricata(join(dir, 'command.sock'));
    await fake.listen();
    control = new SuricataControl({ path: fake.path, timeoutMs: 500 });
  });
  afterEach(async () => {
    await fake.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('says version 0.2 first, then sends the command with its arguments', async () => {
    expect(await control.command('conf-get', { variable: 'stream.bypass' })).toBe('did conf-get');
    expect(fake.received).toEqual([
      { version: '0.2' },
      { command: 'conf-get', arguments: { variable: 'stream.bypass' } },
    ]);
  });

  it('knows which commands wait for an answer on a socket, for every client of it', async () => {
    let release: (() => void) | undefined;
    fake.answer = (msg, socket) => {
      if ('version' in msg) return '{"return":"OK"}\n';
      release = () => socket.write('{"return":"OK","message":"done"}\n');
      return undefined;
    };
    const slow = new SuricataControl({ path: fake.path, timeoutMs: 10_000 });
    expect(commandsInFlight(fake.path)).toEqual([]);
    const reload = slow.command('reload-rules');
    await new Promise((r) => setTimeout(r, 100));
    expect(commandsInFlight(fake.path).map((c) => c.command)).toEqual(['reload-rules']);
    expect(commandsInFlight(join(dir, 'other.sock'))).toEqual([]);
    release!();
    expect(await reload).toBe('done');
    expect(commandsInFlight(fake.path)).toEqual([]);
    // a command that times out is no longer in flight either
    fake.answer = (msg) => ('version' in msg ? '{"return":"OK"}\n' : undefined);
    await control.command('uptime').catch(() => undefined);
    expect(commandsInFlight(fake.path)).toEqual([]);
  });

  it('reads an answer that arrives in pieces', async () => {
    fake.answer = (msg, socket) => {
      if ('version' in msg) return '{"return":"OK"}\n';
      const text = JSON.stringify({
        return: 'OK',
        message: { uptime: 12, tcp: { stream_depth_reached: 3 } },
      });
      socket.write(text.slice(0, 10));
      setTimeout(() => socket.write(`${text.slice(10)}\n`), 20);
      return undefined;
    };
    expect(await control.dumpCounters()).toEqual({ uptime: 12, tcp: { stream_depth_reached: 3 } });
  });

  it('types the answers of each method', async () => {
    const answers: Record<string, unknown> = {
      uptime: 48,
      version: '7.0.10 RELEASE',
      'ruleset-stats': [{ id: 0, rules_loaded: 2, rules_failed: 1, rules_skipped: 0 }],
      'ruleset-failed-rules': [{ tenant_id: 0, rule: 'alert x', filename: '/r', line: 2 }],
      'ruleset-reload-time': [{ id: 0, last_reload: '2026-11-25T19:54:38.810233+0000' }],
      'reload-rules': 'done',
    };
    fake.answer = (msg) =>
      'version' in msg
        ? '{"return":"OK"}\n'
        : `${JSON.stringify({ return: 'OK', message: answers[msg.command as string] })}\n`;
    expect(await control.uptime()).toBe(48);
    expect(await control.version()).toBe('7.0.10 RELEASE');
    expect(await control.rulesetStats()).toEqual(answers['ruleset-stats']);
    expect(await control.failedRules()).toEqual(answers['ruleset-failed-rules']);
    expect(await control.lastReload()).toEqual(answers['ruleset-reload-time']);
    expect(await control.reloadRules()).toEqual(answers['ruleset-stats']);
    expect(fake.received.filter((m) => !('version' in (m as object)))).toContainEqual({
      command: 'reload-rules',
    });
    expect(await control.ping()).toBe(true);
  });

  it('reloads without blocking on request', async () => {
    fake.answer = (msg) =>
      'version' in msg
        ? '{"return":"OK"}\n'
        : `${JSON.stringify({ return: 'OK', message: msg.command === 'ruleset-stats' ? [] : 'done' })}\n`;
    await control.reloadRules({ blocking: false });
    expect(fake.received).toContainEqual({ command: 'ruleset-reload-nonblocking' });
  });

  it("turns NOK into SURICATA_COMMAND_REJECTED with Suricata's message", async () => {
    fake.answer = (msg) =>
      'version' in msg ? '{"return":"OK"}\n' : '{"message":"stats not yet synchronized","return":"NOK"}\n';
    const err = await rejection(control.dumpCounters());
    expect(err.code).toBe('SURICATA_COMMAND_REJECTED');
    expect(err.message).toBe('Suricata refused "dump-counters": stats not yet synchronized');
    expect(err.context).toMatchObject({ command: 'dump-counters', message: 'stats not yet synchronized' });
  });

  it('reports a refused handshake as SURICATA_SOCKET', async () => {
    fake.answer = () => '{"return":"NOK","message":"unsupported version"}\n';
    const err = await rejection(control.uptime());
    expect(err.code).toBe('SURICATA_SOCKET');
    expect(err.message).toContain('refused protocol version 0.2: unsupported version');
    expect(fake.received).toEqual([{ version: '0.2' }]);
  });

  it('says when there is no Suricata on the socket', async () => {
    const missing = new SuricataControl({ path: join(dir, 'nothing.sock') });
    const err = await rejection(missing.version());
    expect(err.code).toBe('SURICATA_SOCKET');
    expect(err.message).toMatch(
      /cannot talk to Suricata on .*nothing\.sock \("version"\): ENOENT; is Suricata running with unix-command enabled/,
    );
    expect(await missing.ping()).toBe(false);
  });

  it('times out when Suricata does not answer', async () => {
    fake.answer = (msg) => ('version' in msg ? '{"return":"OK"}\n' : undefined);
    const started = Date.now();
    const err = await rejection(control.command('uptime', undefined, 100));
    expect(err.code).toBe('SURICATA_SOCKET');
    expect(err.message).toContain('did not answer "uptime" within 100 ms');
    expect(Date.now() - started).toBeLessThan(400);
  });

  it('reports a connection closed before the answer', async () => {
    fake.answer = (msg, socket) => {
      if ('version' in msg) return '{"return":"OK"}\n';
      socket.end();
      return undefined;
    };
    const err = await rejection(control.uptime());
    expect(err.code).toBe('SURICATA_SOCKET');
    expect(err.message).toContain('closed the command socket');
  });

  it('reports a malformed answer', async () => {
    fake.answer = (msg) => ('version' in msg ? '{"return":"OK"}\n' : 'Segmentation fault\n');
    const err = await rejection(control.uptime());
    expect(err.code).toBe('SURICATA_SOCKET');
    expect(err.message).toContain('malformed answer to "uptime": Segmentation fault');
  });

  it('rejects an answer of the wrong type', async () => {
    fake.answer = (msg) => ('version' in msg ? '{"return":"OK"}\n' : '{"return":"OK","message":"soon"}\n');
    const err = await rejection(control.uptime());
    expect(err.code).toBe('SURICATA_SOCKET');
    expect(err.message).toBe('unexpected answer to "uptime": soon');
  });

  it('refuses an answer larger than the limit', async () => {
    const small = new SuricataControl({ path: fake.path, maxReplyBytes: 64 });
    fake.answer = (msg) =>
      'version' in msg
        ? '{"return":"OK"}\n'
        : `${JSON.stringify({ return: 'OK', message: 'x'.repeat(200) })}\n`;
    const err = await rejection(small.version());
    expect(err.message).toContain('exceeds 64 bytes');
  });
});
