import { describe, expect, it } from 'vitest';
import { generatePassword, hashPassword, MIN_PASSWORD_LENGTH, verifyPassword } from './password.js';

describe('passwords (scrypt)', { timeout: 30_000 }, () => {
  it('verifies the password it hashed, and no other', async () => {
    const hash = await hashPassword('correct horse battery');
    expect(hash).toMatch(/^scrypt\$15\$8\$1\$[A-Za-z0-9+/=]{24}\$[A-Za-z0-9+/=]{44}$/);
    expect(await verifyPassword('correct horse battery', hash)).toBe(true);
    expect(await verifyPassword('correct horse batterY', hash)).toBe(false);
    expect(await verifyPassword('', hash)).toBe(false);
  });

  it('salts: the same password hashes differently each time', async () => {
    const [a, b] = await Promise.all([hashPassword('the same password'), hashPassword('the same password')]);
    expect(a).not.toBe(b);
  });

  it('reads the parameters from the hash, so old hashes keep working', async () => {
    const cheap = await hashPassword('an older password', { logN: 10, r: 8, p: 1 });
    expect(cheap.startsWith('scrypt$10$8$1$')).toBe(true);
    expect(await verifyPassword('an older password', cheap)).toBe(true);
  });

  it('never matches a malformed hash or absurd parameters', async () => {
    expect(await verifyPassword('anything at all', 'plain text')).toBe(false);
    expect(
      await verifyPassword(
        'anything at all',
        'scrypt$30$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=',
      ),
    ).toBe(false);
  });

  it('refuses a short password, by name', async () => {
    await expect(hashPassword('short')).rejects.toMatchObject({ code: 'REQUEST_INVALID', path: '/password' });
    expect(generatePassword().length).toBeGreaterThanOrEqual(MIN_PASSWORD_LENGTH);
  });
});
