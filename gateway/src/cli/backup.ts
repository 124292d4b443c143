import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { loadConfig } from '../config.js';
import { PortcullisError } from '../errors.js';

/**
 * `portcullis backup` and `portcullis restore`: the whole configuration (database,
 * config file, keys) as one file, on the security VM itself (as root, or the service's
 * user). A backup can be made while the service runs; a restore wants it stopped.
 */

interface BackupFlags {
  readonly config: string;
  readonly output: string;
}

interface RestoreFlags {
  readonly config: string;
  readonly force?: boolean;
  readonly dryRun?: boolean;
}

/** Whether systemd runs the service now (false where there is no systemd). */
function serviceActive(): boolean {
  const r = spawnSync('systemctl', ['is-active', '--quiet', 'portcullis.service'], { stdio: 'ignore' });
  return r.error === undefined && r.status === 0;
}

export function registerBackupCommands(program: Command): void {
  program
    .command('backup')
    .description('write the whole configuration (database, config file, keys) to one file')
    .requiredOption('--config <file>', 'service configuration YAML (where the data folder is)')
    .requiredOption('-o, --output <file>', 'the backup file to write (mode 0600: it holds the API token)')
    .action(async (flags: BackupFlags) => {
      const { createBackup, readBackup, summarize } = await import('../backup/backup.js');
      const config = loadConfig(flags.config);
      const file = await createBackup({ dataDir: config.dataDir, configFile: flags.config });
      const summary = summarize(readBackup(file));
      writeFileSync(flags.output, file, { mode: 0o600 });
      process.stdout.write(
        `${JSON.stringify({ file: flags.output, bytes: file.length, ...summary }, null, 2)}\n`,
      );
    });

  program
    .command('restore')
    .description('check a backup file, then put its database, config file and keys in place')
    .argument('<file>', 'a file written by `portcullis backup` (or the dashboard)')
    .requiredOption('--config <file>', 'service configuration YAML to replace (its data folder is restored)')
    .option('--dry-run', 'only check the file and say what it holds')
    .option('--force', 'restore although portcullis.service is running')
    .action(async (file: string, flags: RestoreFlags) => {
      const { applyBackup, readBackup, summarize } = await import('../backup/backup.js');
      // every check first: a bad file changes nothing
      const contents = readBackup(readFileSync(file));
      const summary = summarize(contents);
      if (flags.dryRun) {
        process.stdout.write(`${JSON.stringify({ ok: true, ...summary }, null, 2)}\n`);
        return;
      }
      if (!flags.force && serviceActive())
        throw new PortcullisError(
          'CONFLICT',
          'portcullis.service is running: `systemctl stop portcullis` first (the kernel keeps enforcing), restore, then start it; or restore from the dashboard, which restarts the service itself',
        );
      const config = loadConfig(flags.config);
      const restored = applyBackup(contents, { dataDir: config.dataDir, configFile: flags.config });
      process.stdout.write(`${JSON.stringify({ restored, ...summary }, null, 2)}\n`);
    });
}
