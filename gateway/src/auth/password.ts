import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { PortcullisError } from '../errors.js';

/**
 * scrypt parameters of new password hashes: N = 2^15, r = 8, p = 1, a 16-byte salt and
 * a 32-byte key. One hash needs 128·N·r = 32 MiB of memory and takes 50-150 ms on one
 * core: an offline guess costs the same. Stored hashes carry their parameters, so
 * these can grow without invalidating old passwords.
 */
export const SCRYPT_PARAMS = { logN: 15, r: 8, p: 1, saltBytes: 16, keyBytes: 32 } as const;

/** Shortest password `hashPassword` accepts. */
export const MIN_PASSWORD_LENGTH = 10;

/** Longest password accepted (bytes of UTF-8): longer input only costs CPU. */
export const MAX_PASSWORD_LENGTH = 1024;

function derive(password: string, salt: Buffer, logN: number, r: number, p: number, len: number) {
  const N = 2 ** logN;
  return new Promise<Buffer>((resolve, reject) =>
    // maxmem: twice what the parameters need (node's default of 32 MiB is just too small)
    scrypt(password.normalize('NFC'), salt, len, { N, r, p, maxmem: 256 * N * r }, (err, key) =>
      err ? reject(err) : resolve(key),
    ),
  );
}

/**
 * Hash a password for storage: `scrypt$<logN>$<r>$<p>$<salt b64>$<key b64>`.
 * @throws REQUEST_INVALID for a password shorter than MIN_PASSWORD_LENGTH or longer
 *   than MAX_PASSWORD_LENGTH bytes.
 */
export async function hashPassword(
  password: string,
  params: { logN: number; r: number; p: number } = SCRYPT_PARAMS,
): Promise<string> {
  if ([...password].length < MIN_PASSWORD_LENGTH) {
    throw new PortcullisError(
      'REQUEST_INVALID',
      `a password needs at least ${MIN_PASSWORD_LENGTH} characters`,
      { path: '/password' },
    );
  }
  if (Buffer.byteLength(password) > MAX_PASSWORD_LENGTH) {
    throw new PortcullisError('REQUEST_INVALID', `a password has at most ${MAX_PASSWORD_LENGTH} bytes`, {
      path: '/password',
    });
  }
  const salt = randomBytes(SCRYPT_PARAMS.saltBytes);
  const key = await derive(password, salt, params.logN, params.r, params.p, SCRYPT_PARAMS.keyBytes);
  return ['scrypt', params.logN, params.r, params.p, salt.toString('base64'), key.toString('base64')].join(
    '$',
  );
}

const FORMAT = /^scrypt\$(\d{1,2})\$(\d{1,2})\$(\d{1,2})\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/;

/**
 * Whether `password` matches a hash made by `hashPassword`, compared in constant
 * time. A malformed hash (or one with absurd parameters) never matches.
 */
export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  const m = FORMAT.exec(hash);
  if (!m || Buffer.byteLength(password) > MAX_PASSWORD_LENGTH) return false;
  const [logN, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (logN < 1 || logN > 20 || r < 1 || r > 32 || p < 1 || p > 16) return false;
  const want = Buffer.from(m[5]!, 'base64');
  if (want.length < 16) return false;
  const got = await derive(password, Buffer.from(m[4]!, 'base64'), logN, r, p, want.length);
  return timingSafeEqual(got, want);
}

/** A hash of a random password: verified against when the user does not exist, so that
 * a login takes as long for an unknown name as for a wrong password. */
export function dummyHash(): Promise<string> {
  return hashPassword(randomBytes(24).toString('base64url'));
}

/** A new random password for a person to type: 20 characters of base64url (120 bits). */
export function generatePassword(): string {
  return randomBytes(15).toString('base64url');
}
