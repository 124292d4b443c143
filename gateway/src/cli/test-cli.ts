import { Command } from 'commander';
import { registerApiCommands } from './api-commands.js';

/**
 * Runs `portcullis` API commands in-process against the API at `api()` (read at each
 * call: tests start it in beforeAll); resolves with what the command printed. Tests only.
 */
export function inProcessCli(api: () => string): (...args: string[]) => Promise<string> {
  return async (...args) => {
    let out = '';
    const program = new Command('portcullis')
      .exitOverride()
      .configureOutput({ writeOut: () => {}, writeErr: () => {} });
    registerApiCommands(program, {
      io: { out: (s) => void (out += s), err: () => {} },
      env: { PORTCULLIS_API: api() },
      actor: 'cli:test',
    });
    await program.parseAsync(args, { from: 'user' });
    return out;
  };
}
