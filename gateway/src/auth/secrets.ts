import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Session ids and API tokens: 32 random bytes (256 bits), stored only as their
 * SHA-256. A slow hash would add nothing for a secret of that entropy, and the lookup
 * by hash stays an index read.
 */

/** Prefix of API tokens (`pcl_<id>_<secret>`), so that scanners recognise them. */
export const TOKEN_PREFIX = 'pcl_';

/** A new random secret, base64url. */
export function newSecret(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

/** The stored form of a secret: its SHA-256, hex. */
export function secretHash(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** Constant-time equality of two strings (of their SHA-256, so lengths may differ). */
export function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

/** A new API token and the parts to store: its public id and the hash of the whole token. */
export function newToken(): { token: string; id: string; hash: string } {
  const id = randomBytes(6).toString('hex');
  const token = `${TOKEN_PREFIX}${id}_${newSecret()}`;
  return { token, id, hash: secretHash(token) };
}

/** The id part of a token (`pcl_<id>_…`), or undefined when it is not one of ours. */
export function tokenId(token: string): string | undefined {
  const m = /^pcl_([0-9a-f]{12})_[A-Za-z0-9_-]{43}$/.exec(token);
  return m?.[1];
}
