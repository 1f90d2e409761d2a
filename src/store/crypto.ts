/**
 * Keys and sealing. A repository has two master keys: one for AES-256-GCM
 * (sealing every stored record and blob) and one for HMAC-SHA256 (blob ids, so
 * a stolen store reveals nothing about content). The master keys are sealed
 * under a key derived from the passphrase with scrypt.
 *
 * An unencrypted repository (an explicit choice at init) uses PlainSealer:
 * data stays readable but still carries a checksum, so damage is detected.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes, scrypt } from 'node:crypto';
import { errors } from './errors.js';

export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;
const CHECKSUM_BYTES = 16;

export interface KdfParams {
  N: number;
  r: number;
  p: number;
}

/** ~100 ms and 32 MiB here: slow enough to make guessing expensive. */
export const DEFAULT_KDF: KdfParams = { N: 2 ** 15, r: 8, p: 1 };

export function deriveKey(password: string, salt: Uint8Array, kdf: KdfParams): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFC'), salt, 32, { ...kdf, maxmem: 256 * kdf.N * kdf.r + 1024 * 1024 }, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

/** Seals and opens byte strings. `seal` returns pieces to be written one after another. */
export interface Sealer {
  readonly encrypted: boolean;
  /** Bytes added to every sealed record. */
  readonly overhead: number;
  seal(plaintext: Uint8Array): Buffer[];
  /** Throws CORRUPT naming `what` when the data was altered. */
  open(sealed: Uint8Array, what: string): Buffer;
}

export class AeadSealer implements Sealer {
  readonly encrypted = true;
  readonly overhead = NONCE_BYTES + TAG_BYTES;
  constructor(private readonly key: Buffer) {
    if (key.length !== 32) throw new TypeError('AES-256-GCM needs a 32-byte key');
  }

  seal(plaintext: Uint8Array): Buffer[] {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, nonce);
    const body = cipher.update(plaintext);
    cipher.final();
    return [nonce, body, cipher.getAuthTag()];
  }

  open(sealed: Uint8Array, what: string): Buffer {
    if (sealed.length < this.overhead) throw errors.corrupt(`${what} is truncated (${sealed.length} bytes)`);
    const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.length);
    const decipher = createDecipheriv('aes-256-gcm', this.key, buf.subarray(0, NONCE_BYTES));
    decipher.setAuthTag(buf.subarray(buf.length - TAG_BYTES));
    const body = decipher.update(buf.subarray(NONCE_BYTES, buf.length - TAG_BYTES));
    try {
      decipher.final();
    } catch (cause) {
      throw errors.corrupt(`${what} failed authentication: it is damaged or was altered`, { cause });
    }
    return body;
  }
}

export class PlainSealer implements Sealer {
  readonly encrypted = false;
  readonly overhead = CHECKSUM_BYTES;

  seal(plaintext: Uint8Array): Buffer[] {
    // A copy: callers may reuse their buffer once seal returns.
    return [Buffer.from(plaintext), checksum(plaintext)];
  }

  open(sealed: Uint8Array, what: string): Buffer {
    if (sealed.length < CHECKSUM_BYTES) throw errors.corrupt(`${what} is truncated (${sealed.length} bytes)`);
    const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.length);
    const body = buf.subarray(0, buf.length - CHECKSUM_BYTES);
    if (!checksum(body).equals(buf.subarray(buf.length - CHECKSUM_BYTES))) {
      throw errors.corrupt(`${what} fails its checksum: it is damaged`);
    }
    return body;
  }
}

function checksum(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest().subarray(0, CHECKSUM_BYTES);
}

export function sealToBuffer(sealer: Sealer, plaintext: Uint8Array): Buffer {
  return Buffer.concat(sealer.seal(plaintext));
}

/** Blob ids: HMAC-SHA256 under the repository's id key. */
export class BlobHasher {
  constructor(private readonly idKey: Buffer) {}
  id(data: Uint8Array): Buffer {
    return createHmac('sha256', this.idKey).update(data).digest();
  }
}

export const sha256 = (data: Uint8Array): Buffer => createHash('sha256').update(data).digest();
export const randomKey = (): Buffer => randomBytes(32);
