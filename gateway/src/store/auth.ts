import type { Statement } from 'better-sqlite3';
import { isRole, type Role } from '../auth/access.js';
import { newSecret, newToken, secretHash, tokenId } from '../auth/secrets.js';
import { PortcullisError } from '../errors.js';
import type { RepositoryContext } from './records.js';

/** A person who logs in to the dashboard (the password hash never leaves the store's API). */
export interface User {
  readonly name: string;
  readonly role: Role;
  /** For a parent: the people (VM owners) they look after. */
  readonly people: readonly string[];
  readonly createdAt: string;
}

/** An API token as listed: never the token itself, which is shown once at creation. */
export interface ApiToken {
  readonly id: string;
  readonly name: string;
  readonly role: Role;
  readonly people: readonly string[];
  readonly createdAt: string;
  /** ISO time; absent: does not expire. */
  readonly expiresAt?: string;
  readonly revokedAt?: string;
  readonly lastUsedAt?: string;
}

/** Session lifetimes, in ms. */
export interface SessionLimits {
  /** A session unused this long ends. */
  readonly idleMs: number;
  /** A session ends this long after login, used or not. */
  readonly absoluteMs: number;
}

const USER_NAME = /^[a-z][a-z0-9._-]{0,31}$/;
const TOKEN_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const PERSON = /^[a-z][a-z0-9-]{0,30}$/;
/** last_seen is written at most this often per session (a write per request is waste). */
const TOUCH_MS = 60_000;

interface UserRow {
  name: string;
  role: string;
  people: string;
  password: string;
  created_at: string;
}

interface TokenRow {
  id: string;
  name: string;
  role: string;
  people: string;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
  last_used_at: string | null;
}

function userFromRow(r: UserRow): User {
  return {
    name: r.name,
    role: r.role as Role,
    people: JSON.parse(r.people) as string[],
    createdAt: r.created_at,
  };
}

function tokenFromRow(r: TokenRow): ApiToken {
  return {
    id: r.id,
    name: r.name,
    role: r.role as Role,
    people: JSON.parse(r.people) as string[],
    createdAt: r.created_at,
    ...(r.expires_at === null ? {} : { expiresAt: r.expires_at }),
    ...(r.revoked_at === null ? {} : { revokedAt: r.revoked_at }),
    ...(r.last_used_at === null ? {} : { lastUsedAt: r.last_used_at }),
  };
}

function checkRole(role: string, people: readonly string[], path: string): asserts role is Role {
  if (!isRole(role)) {
    throw new PortcullisError(
      'REQUEST_INVALID',
      `role "${role}" does not exist; use admin, parent or viewer`,
      {
        path: `${path}/role`,
      },
    );
  }
  if (role === 'parent' && people.length === 0) {
    throw new PortcullisError(
      'REQUEST_INVALID',
      'a parent looks after somebody: name the people (VM owners) with --people',
      { path: `${path}/people` },
    );
  }
  for (const p of people) {
    if (!PERSON.test(p)) {
      throw new PortcullisError('REQUEST_INVALID', `"${p}" is not a VM owner's name (a-z, 0-9, -)`, {
        path: `${path}/people`,
      });
    }
  }
}

/**
 * Users, their login sessions and API tokens. Passwords arrive hashed
 * (`auth/password.ts`); session ids and tokens are stored as their SHA-256 only.
 * Adding, changing and removing users and tokens is audited; sessions are not (the
 * login itself is, by the HTTP layer).
 */
export class AuthRepository {
  readonly #ctx: RepositoryContext;
  readonly #user: Statement;
  readonly #session: Statement;
  readonly #touch: Statement;
  readonly #token: Statement;

  constructor(ctx: RepositoryContext) {
    this.#ctx = ctx;
    this.#user = ctx.db.prepare('SELECT * FROM users WHERE name = ?');
    this.#session = ctx.db.prepare(
      `SELECT s.created_at AS s_created, s.last_seen AS s_seen, u.* FROM sessions s JOIN users u ON u.name = s.user WHERE s.id_hash = ?`,
    );
    this.#touch = ctx.db.prepare('UPDATE sessions SET last_seen = ? WHERE id_hash = ?');
    this.#token = ctx.db.prepare('SELECT * FROM api_tokens WHERE id = ? AND hash = ?');
  }

  // --- users ---------------------------------------------------------------------------

  /** Every user, by name. */
  users(): User[] {
    return (this.#ctx.db.prepare('SELECT * FROM users ORDER BY name').all() as UserRow[]).map(userFromRow);
  }

  user(name: string): User | undefined {
    const row = this.#user.get(name) as UserRow | undefined;
    return row && userFromRow(row);
  }

  /** A user's password hash, for the login check; undefined when there is no such user. */
  passwordHash(name: string): string | undefined {
    return (this.#user.get(name) as UserRow | undefined)?.password;
  }

  /**
   * Add a user with an already hashed password.
   * @throws REQUEST_INVALID for a bad name, role or people; CONFLICT when the name is taken.
   */
  addUser(
    input: { name: string; role: string; people?: readonly string[]; passwordHash: string },
    actor: string,
  ): User {
    const people = [...new Set(input.people ?? [])];
    if (!USER_NAME.test(input.name)) {
      throw new PortcullisError(
        'REQUEST_INVALID',
        `"${input.name}" is not a user name: a lower-case letter, then up to 31 of a-z 0-9 . _ -`,
        { path: '/name' },
      );
    }
    checkRole(input.role, people, '');
    if (input.role !== 'parent' && people.length > 0) {
      throw new PortcullisError('REQUEST_INVALID', 'only a parent looks after people; drop --people', {
        path: '/people',
      });
    }
    if (this.user(input.name)) {
      throw new PortcullisError('CONFLICT', `user "${input.name}" exists already`, { path: '/name' });
    }
    const role = input.role;
    return this.#ctx.audited(() => {
      this.#ctx.db
        .prepare('INSERT INTO users (name, role, people, password, created_at) VALUES (?, ?, ?, ?, ?)')
        .run(input.name, role, JSON.stringify(people), input.passwordHash, this.#iso());
      const user = this.user(input.name)!;
      return { result: user, audit: { actor, action: 'user.add', target: `user/${user.name}`, after: user } };
    });
  }

  /**
   * Change a user's password; every session of theirs ends.
   * @throws NOT_FOUND for an unknown user.
   */
  setPassword(name: string, passwordHash: string, actor: string): void {
    this.#mustUser(name);
    this.#ctx.audited(() => {
      this.#ctx.db.prepare('UPDATE users SET password = ? WHERE name = ?').run(passwordHash, name);
      this.#ctx.db.prepare('DELETE FROM sessions WHERE user = ?').run(name);
      return { result: undefined, audit: { actor, action: 'user.passwd', target: `user/${name}` } };
    });
  }

  /**
   * Remove a user and their sessions.
   * @throws NOT_FOUND for an unknown user.
   */
  removeUser(name: string, actor: string): void {
    const before = this.#mustUser(name);
    this.#ctx.audited(() => {
      this.#ctx.db.prepare('DELETE FROM users WHERE name = ?').run(name);
      return { result: undefined, audit: { actor, action: 'user.remove', target: `user/${name}`, before } };
    });
  }

  // --- sessions ------------------------------------------------------------------------

  /** Start a session for a user; returns its secret (the cookie's value), stored hashed. */
  createSession(user: string, limits: SessionLimits): string {
    const now = this.#ctx.now();
    this.#ctx.db
      .prepare('DELETE FROM sessions WHERE last_seen < ? OR created_at < ?')
      .run(now - limits.idleMs, now - limits.absoluteMs);
    const secret = newSecret();
    this.#ctx.db
      .prepare('INSERT INTO sessions (id_hash, user, created_at, last_seen) VALUES (?, ?, ?, ?)')
      .run(secretHash(secret), user, now, now);
    return secret;
  }

  /**
   * The user of a live session, or undefined (no such session, or idle or too old, in
   * which case it is removed). Marks the session as used.
   */
  session(secret: string, limits: SessionLimits): User | undefined {
    const hash = secretHash(secret);
    const row = this.#session.get(hash) as (UserRow & { s_created: number; s_seen: number }) | undefined;
    if (!row) return undefined;
    const now = this.#ctx.now();
    if (now - row.s_seen >= limits.idleMs || now - row.s_created >= limits.absoluteMs) {
      this.#ctx.db.prepare('DELETE FROM sessions WHERE id_hash = ?').run(hash);
      return undefined;
    }
    if (now - row.s_seen > TOUCH_MS) this.#touch.run(now, hash);
    return userFromRow(row);
  }

  /** End one session. */
  endSession(secret: string): void {
    this.#ctx.db.prepare('DELETE FROM sessions WHERE id_hash = ?').run(secretHash(secret));
  }

  /** End every session of a user ("log out everywhere"); returns how many there were. */
  endSessions(user: string): number {
    return this.#ctx.db.prepare('DELETE FROM sessions WHERE user = ?').run(user).changes;
  }

  /** How many sessions a user has open (expired ones may still count until the next login). */
  sessionCount(user: string): number {
    return (
      (this.#ctx.db.prepare('SELECT count(*) FROM sessions WHERE user = ?').pluck().get(user) as number) ?? 0
    );
  }

  // --- API tokens ----------------------------------------------------------------------

  /**
   * Create an API token; returns it (shown once: only its hash is kept) with its record.
   * @throws REQUEST_INVALID for a bad name, role, people or expiry; CONFLICT when a live
   *   token has the name.
   */
  createToken(
    input: { name: string; role: string; people?: readonly string[]; expiresAt?: string | undefined },
    actor: string,
  ): { token: string; record: ApiToken } {
    const people = [...new Set(input.people ?? [])];
    if (!TOKEN_NAME.test(input.name)) {
      throw new PortcullisError(
        'REQUEST_INVALID',
        `"${input.name}" is not a token name: up to 64 of A-Z a-z 0-9 . _ -`,
        { path: '/name' },
      );
    }
    checkRole(input.role, people, '');
    if (input.expiresAt !== undefined && !(Date.parse(input.expiresAt) > this.#ctx.now())) {
      throw new PortcullisError(
        'REQUEST_INVALID',
        `expiry "${input.expiresAt}" is not a time in the future`,
        {
          path: '/expires',
        },
      );
    }
    const live = this.#ctx.db
      .prepare('SELECT 1 FROM api_tokens WHERE name = ? AND revoked_at IS NULL')
      .get(input.name);
    if (live) {
      throw new PortcullisError('CONFLICT', `a token named "${input.name}" exists; revoke it first`, {
        path: '/name',
      });
    }
    const role = input.role;
    const { token, id, hash } = newToken();
    return this.#ctx.audited(() => {
      this.#ctx.db
        .prepare(
          'INSERT INTO api_tokens (id, name, hash, role, people, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
        )
        .run(id, input.name, hash, role, JSON.stringify(people), this.#iso(), input.expiresAt ?? null);
      const record = this.tokens().find((t) => t.id === id)!;
      return {
        result: { token, record },
        audit: { actor, action: 'token.create', target: `token/${input.name}`, after: record },
      };
    });
  }

  /** Every token (revoked ones too), newest first. */
  tokens(): ApiToken[] {
    return (
      this.#ctx.db.prepare('SELECT * FROM api_tokens ORDER BY created_at DESC, id').all() as TokenRow[]
    ).map(tokenFromRow);
  }

  /**
   * The record of a live token (not revoked, not expired), or undefined. Marks it used
   * (at most once a minute).
   */
  verifyToken(token: string): ApiToken | undefined {
    const id = tokenId(token);
    if (id === undefined) return undefined;
    const row = this.#token.get(id, secretHash(token)) as TokenRow | undefined;
    if (!row || row.revoked_at !== null) return undefined;
    const now = this.#ctx.now();
    if (row.expires_at !== null && Date.parse(row.expires_at) <= now) return undefined;
    if (row.last_used_at === null || now - Date.parse(row.last_used_at) > TOUCH_MS) {
      this.#ctx.db.prepare('UPDATE api_tokens SET last_used_at = ? WHERE id = ?').run(this.#iso(), id);
    }
    return tokenFromRow(row);
  }

  /**
   * Revoke a token by id or by name (the live one); it stops working at once.
   * @throws NOT_FOUND when no live token has that id or name.
   */
  revokeToken(idOrName: string, actor: string): ApiToken {
    const row = this.#ctx.db
      .prepare('SELECT * FROM api_tokens WHERE (id = ? OR name = ?) AND revoked_at IS NULL')
      .get(idOrName, idOrName) as TokenRow | undefined;
    if (!row) {
      throw new PortcullisError('NOT_FOUND', `no live token with id or name "${idOrName}"`, {
        path: '/token',
      });
    }
    return this.#ctx.audited(() => {
      this.#ctx.db.prepare('UPDATE api_tokens SET revoked_at = ? WHERE id = ?').run(this.#iso(), row.id);
      const record = this.tokens().find((t) => t.id === row.id)!;
      return { result: record, audit: { actor, action: 'token.revoke', target: `token/${row.name}` } };
    });
  }

  #mustUser(name: string): User {
    const user = this.user(name);
    if (!user) throw new PortcullisError('NOT_FOUND', `no user "${name}"`, { path: '/name' });
    return user;
  }

  #iso(): string {
    return new Date(this.#ctx.now()).toISOString();
  }
}
