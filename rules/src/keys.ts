import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  type KeyObject,
} from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Key, Signature } from '@tufjs/models';
import { PortcullisError } from '../../gateway/src/errors.js';

/**
 * Ed25519 keys of the vendor's TUF roles (node:crypto). A key file is PEM: a private key
 * (PKCS#8, `*.key`, kept offline for root) signs and also names its public half; a public
 * key (SPKI, `*.pub`) only names a key, e.g. a root key whose holder signs elsewhere.
 */

/** A public key as TUF metadata lists it, with its key id. */
export interface PublicKey {
  /** sha256 of the key's canonical JSON, hex: how metadata refers to it. */
  readonly keyid: string;
  /** The key as it appears in root metadata. */
  readonly key: Key;
}

/** A key that can sign. */
export interface Signer extends PublicKey {
  /** Sign canonical bytes; returns the TUF signature object. */
  sign(data: Buffer): Signature;
}

/** A new key pair, PEM-encoded. */
export interface GeneratedKey {
  readonly keyid: string;
  /** PKCS#8 PEM; write it with mode 0600. */
  readonly privatePem: string;
  /** SPKI PEM. */
  readonly publicPem: string;
}

function rawPublicHex(pub: KeyObject): string {
  const jwk = pub.export({ format: 'jwk' });
  if (pub.asymmetricKeyType !== 'ed25519' || typeof jwk.x !== 'string') {
    throw new PortcullisError('BUNDLE_INVALID', `key is ${pub.asymmetricKeyType ?? 'unknown'}, not Ed25519`);
  }
  return Buffer.from(jwk.x, 'base64url').toString('hex');
}

/** The TUF form of an Ed25519 public key and its key id (TUF: sha256 of the canonical JSON). */
export function publicKeyOf(pub: KeyObject): PublicKey {
  const hex = rawPublicHex(pub);
  // canonical JSON of {keytype, keyval, scheme}: keys sorted, no spaces
  const canonical = `{"keytype":"ed25519","keyval":{"public":"${hex}"},"scheme":"ed25519"}`;
  const keyid = createHash('sha256').update(canonical).digest('hex');
  const key = new Key({ keyID: keyid, keyType: 'ed25519', scheme: 'ed25519', keyVal: { public: hex } });
  return { keyid, key };
}

/** A signer from an Ed25519 private key. */
export function signerOf(priv: KeyObject): Signer {
  const pub = publicKeyOf(createPublicKey(priv));
  return {
    ...pub,
    sign: (data) => new Signature({ keyID: pub.keyid, sig: sign(null, data, priv).toString('hex') }),
  };
}

/** Generate an Ed25519 key pair. */
export function generateKey(): GeneratedKey {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return {
    keyid: publicKeyOf(publicKey).keyid,
    privatePem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    publicPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
  };
}

/**
 * Read a key from PEM text: a private key gives a {@link Signer}, a public key a {@link PublicKey}.
 * @throws BUNDLE_INVALID if it is neither an Ed25519 private nor public key.
 */
export function parseKey(pem: string, origin: string): PublicKey | Signer {
  try {
    if (pem.includes('PRIVATE KEY')) return signerOf(createPrivateKey(pem));
    return publicKeyOf(createPublicKey(pem));
  } catch (cause) {
    if (cause instanceof PortcullisError) {
      throw new PortcullisError('BUNDLE_INVALID', `${origin}: ${cause.message}`, { cause });
    }
    throw new PortcullisError(
      'BUNDLE_INVALID',
      `${origin} is not a PEM Ed25519 key (make one with 'portcullis bundle keygen'): ${(cause as Error).message}`,
      { cause },
    );
  }
}

/** Read a key file (see {@link parseKey}). */
export async function readKey(file: string): Promise<PublicKey | Signer> {
  let pem: string;
  try {
    pem = await readFile(file, 'utf8');
  } catch (cause) {
    throw new PortcullisError('BUNDLE_INVALID', `cannot read key ${file}: ${(cause as Error).message}`, {
      cause,
    });
  }
  return parseKey(pem, file);
}

/** Whether a key can sign. */
export function isSigner(k: PublicKey | Signer): k is Signer {
  return 'sign' in k;
}
