#!/usr/bin/env node
import { Command } from 'commander';
import { isPortcullisError } from '../errors.js';
import { registerApiCommands } from './api-commands.js';
import { registerBackupCommands } from './backup.js';
import { registerAuthCommands } from './auth.js';
import { registerBundleCommands } from './bundle.js';
import { registerLabCommands } from './lab.js';
import { registerReplay } from './replay.js';
import { registerServeCommand } from './serve.js';
import { registerVersionCommand } from './version.js';

/**
 * The `portcullis` command. Each subcommand lives in its own module and registers
 * itself here; commands that change policy talk to the API, offline tools run here.
 */
const program = new Command('portcullis')
  .description('Portcullis: the mandatory network gateway of a KVM host')
  .showHelpAfterError();

// subcommand registrations (one line each)
registerApiCommands(program);
registerBackupCommands(program);
registerAuthCommands(program);
registerBundleCommands(program);
registerLabCommands(program);
registerReplay(program);
registerServeCommand(program);
registerVersionCommand(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  if (isPortcullisError(err)) {
    process.stderr.write(`portcullis: ${err.code}: ${err.message}\n`);
  } else {
    process.stderr.write(`portcullis: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  }
  process.exit(1);
});
