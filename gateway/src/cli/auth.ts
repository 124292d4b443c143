import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import type { Command } from 'commander';
import { generatePassword, hashPassword } from '../auth/password.js';
import { ensureTls, tlsEnabled, tlsPaths } from '../auth/tls-files.js';
import { certificateFingerprint } from '../auth/cert.js';
import { loadConfig } from '../config.js';
import { PortcullisError } from '../errors.js';
import type { ApiToken } from '../store/auth.js';
import { Store } from '../store/store.js';
import { asJson, processIo, table, type CliIo } from './output.js';
import { list } from './api-commands.js';

/** Where the service's config is when neither --config nor PORTCULLIS_CONFIG says. */
export const DEFAULT_CONFIG = '/etc/portcullis/portcullis.yaml';

const CONFIG_HELP = `service configuration (default: $PORTCULLIS_CONFIG or ${DEFAULT_CONFIG})`;

interface LocalOptions {
  readonly config?: string;
  readonly json?: boolean;
}

/** The local store of the service, by its config's data folder. */
function openStore(opts: LocalOptions): Store {
  const config = loadConfig(opts.config ?? process.env.PORTCULLIS_CONFIG ?? DEFAULT_CONFIG);
  return Store.open({ path: `${config.dataDir}/portcullis.db` });
}

/** Who runs the command, for the audit log: `cli:<login name>`. */
function localActor(): string {
  try {
    return `cli:${userInfo()
      .username.replace(/[^A-Za-z0-9._@-]/g, '_')
      .slice(0, 50)}`;
  } catch {
    return 'cli';
  }
}

/** A password from stdin (its first line), or a new random one to print. */
async function passwordFrom(stdin: boolean): Promise<{ password: string; generated: boolean }> {
  if (!stdin) return { password: generatePassword(), generated: true };
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const password = Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
  return { password, generated: false };
}

/**
 * `90d`, `12h`, `30m`, an ISO date, or `never`: an expiry time (ISO) or undefined.
 * @throws REQUEST_INVALID for anything else.
 */
export function parseExpiry(value: string, now = Date.now()): string | undefined {
  if (value === 'never') return undefined;
  const m = /^(\d{1,5})([dhm])$/.exec(value);
  if (m) {
    const unit = { d: 86_400_000, h: 3_600_000, m: 60_000 }[m[2] as 'd' | 'h' | 'm'];
    return new Date(now + Number(m[1]) * unit).toISOString();
  }
  const t = Date.parse(value);
  if (Number.isNaN(t)) {
    throw new PortcullisError(
      'REQUEST_INVALID',
      `"${value}" is not an expiry: give 90d, 12h, 30m, a date (2027-01-31) or never (at --expires)`,
      { path: '--expires' },
    );
  }
  return new Date(t).toISOString();
}

const tokenColumns = [
  ['ID', (t: ApiToken) => t.id],
  ['NAME', (t: ApiToken) => t.name],
  ['ROLE', (t: ApiToken) => t.role],
  ['PEOPLE', (t: ApiToken) => t.people.join(',')],
  ['EXPIRES', (t: ApiToken) => t.expiresAt ?? 'never'],
  ['REVOKED', (t: ApiToken) => t.revokedAt],
  ['LAST USED', (t: ApiToken) => t.lastUsedAt],
] as const;

/**
 * `portcullis user add|passwd|rm|list`, `portcullis token create|list|revoke` and
 * `portcullis tls fingerprint`: run as root on the appliance, against the service's
 * local store (the service need not run; SQLite WAL lets both write).
 */
export function registerAuthCommands(program: Command, io: CliIo = processIo): void {
  const user = program.command('user').description('people who log in to the dashboard (local store, root)');

  user
    .command('add')
    .description('add a user; prints a new random password unless --password-stdin')
    .argument('<name>')
    .requiredOption('--role <role>', 'admin, parent or viewer')
    .option('--people <names>', "a parent's people: VM owners, comma-separated", list)
    .option('--password-stdin', 'read the password from stdin instead')
    .option('--first', 'only if no user exists yet (provisioning); otherwise do nothing')
    .option('--config <file>', CONFIG_HELP)
    .action(
      async (
        name: string,
        opts: LocalOptions & { role: string; people?: string[]; passwordStdin?: boolean; first?: boolean },
      ) => {
        const store = openStore(opts);
        try {
          if (opts.first && store.auth.users().length > 0) return;
          const { password, generated } = await passwordFrom(opts.passwordStdin === true);
          store.auth.addUser(
            { name, role: opts.role, people: opts.people ?? [], passwordHash: await hashPassword(password) },
            localActor(),
          );
          io.out(
            generated
              ? `User ${name} (${opts.role}) added. Password (shown once): ${password}\n`
              : `User ${name} (${opts.role}) added.\n`,
          );
        } finally {
          store.close();
        }
      },
    );

  user
    .command('passwd')
    .description("set a user's password (new random one unless --password-stdin); ends their sessions")
    .argument('<name>')
    .option('--password-stdin', 'read the password from stdin instead')
    .option('--config <file>', CONFIG_HELP)
    .action(async (name: string, opts: LocalOptions & { passwordStdin?: boolean }) => {
      const store = openStore(opts);
      try {
        if (!store.auth.user(name)) throw new PortcullisError('NOT_FOUND', `no user "${name}"`);
        const { password, generated } = await passwordFrom(opts.passwordStdin === true);
        store.auth.setPassword(name, await hashPassword(password), localActor());
        io.out(
          generated
            ? `Password of ${name} changed (shown once): ${password}\n`
            : `Password of ${name} changed.\n`,
        );
      } finally {
        store.close();
      }
    });

  user
    .command('rm')
    .description('remove a user and end their sessions')
    .argument('<name>')
    .option('--config <file>', CONFIG_HELP)
    .action((name: string, opts: LocalOptions) => {
      const store = openStore(opts);
      try {
        store.auth.removeUser(name, localActor());
        io.out(`User ${name} removed.\n`);
      } finally {
        store.close();
      }
    });

  user
    .command('list')
    .description('list the users')
    .option('--json', 'print JSON for machines')
    .option('--config <file>', CONFIG_HELP)
    .action((opts: LocalOptions) => {
      const store = openStore(opts);
      try {
        const users = store.auth.users();
        if (opts.json) return io.out(asJson(users));
        io.out(
          table(users, [
            ['NAME', (u) => u.name],
            ['ROLE', (u) => u.role],
            ['PEOPLE', (u) => u.people.join(',')],
            ['SESSIONS', (u) => store.auth.sessionCount(u.name)],
            ['CREATED', (u) => u.createdAt],
          ]),
        );
      } finally {
        store.close();
      }
    });

  const token = program
    .command('token')
    .description('API tokens for scripts and Prometheus (local store, root)');

  token
    .command('create')
    .description('create an API token and print it (only its hash is kept: it is shown once)')
    .requiredOption('--role <role>', 'admin, parent or viewer')
    .requiredOption('--name <name>', 'what it is for, e.g. prometheus')
    .option('--people <names>', 'for a parent token: VM owners, comma-separated', list)
    .option('--expires <when>', 'in 90d, 12h, 30m, on a date, or never', '365d')
    .option('--config <file>', CONFIG_HELP)
    .action((opts: LocalOptions & { role: string; name: string; people?: string[]; expires: string }) => {
      const store = openStore(opts);
      try {
        const created = store.auth.createToken(
          {
            name: opts.name,
            role: opts.role,
            people: opts.people ?? [],
            expiresAt: parseExpiry(opts.expires),
          },
          localActor(),
        );
        io.out(`${created.token}\n`);
      } finally {
        store.close();
      }
    });

  token
    .command('list')
    .description('list API tokens (never the tokens themselves)')
    .option('--json', 'print JSON for machines')
    .option('--config <file>', CONFIG_HELP)
    .action((opts: LocalOptions) => {
      const store = openStore(opts);
      try {
        const tokens = store.auth.tokens();
        io.out(opts.json ? asJson(tokens) : table(tokens, tokenColumns));
      } finally {
        store.close();
      }
    });

  token
    .command('revoke')
    .description('revoke a token by id or name; it stops working at once')
    .argument('<token>', 'id or name')
    .option('--config <file>', CONFIG_HELP)
    .action((idOrName: string, opts: LocalOptions) => {
      const store = openStore(opts);
      try {
        const revoked = store.auth.revokeToken(idOrName, localActor());
        io.out(`Token ${revoked.name} (${revoked.id}) revoked.\n`);
      } finally {
        store.close();
      }
    });

  const tls = program.command('tls').description("the management listener's TLS certificate");
  tls
    .command('fingerprint')
    .description("print the certificate's SHA-256 fingerprint (compare it with the browser's)")
    .option('--config <file>', CONFIG_HELP)
    .action((opts: LocalOptions) => {
      const config = loadConfig(opts.config ?? process.env.PORTCULLIS_CONFIG ?? DEFAULT_CONFIG);
      if (!tlsEnabled(config)) {
        throw new PortcullisError(
          'CONFIG_INVALID',
          'api.tls.enabled is false: the listener has no certificate',
        );
      }
      const { cert } = tlsPaths(config);
      let pem: string;
      try {
        pem = readFileSync(cert, 'utf8');
      } catch {
        // not started yet: make it now, as the service would at its first start
        pem = ensureTls(config).cert;
      }
      io.out(`SHA-256 ${certificateFingerprint(pem)}  ${cert}\n`);
    });
}
