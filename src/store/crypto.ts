/**
 * Keys and sealing. A repository has two master keys: one for AES-256-GCM
 * (sealing every stored record and blob) and one for HMAC-SHA256 (blob ids, so
 * a stolen store reveals nothing about content). The master keys are sealed
 * under a key derived from the passphrase with scrypt.
 *
 * An unencrypted repository (an explicit choice at init) uses PlainSealer:
 * data stays readable but still carries a checksum, so damage is detected.
 */
import { createCipheriv, createHash, createHmac, randomBytes, scrypt } from 'node:crypto';
import { native } from '../native.js';
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
  /** The key records are sealed with (null: an unencrypted repository), for what opens them in C. */
  readonly key: Buffer | null;
  seal(plaintext: Uint8Array): Buffer[];
  /** Throws CORRUPT naming `what` when the data was altered. */
  open(sealed: Uint8Array, what: string): Buffer;
}

/** Opening is one implementation in C (native/blob_open.c), shared with the mount; its failures become CORRUPT. */
export function opened<T>(what: string, open: () => T): T {
  try {
    return open();
  } catch (e) {
    throw asCorrupt(what, e);
  }
}

/** `opened`, for the opening of a large blob in a thread-pool job. */
export async function openedInPool<T>(what: string, open: () => Promise<T>): Promise<T> {
  try {
    return await open();
  } catch (e) {
    throw asCorrupt(what, e);
  }
}

function asCorrupt(what: string, e: unknown): unknown {
  return (e as NodeJS.ErrnoException).code === 'DAMAGED' ? errors.corrupt(`${what} ${(e as Error).message}`, { cause: e }) : e;
}

export class AeadSealer implements Sealer {
  readonly encrypted = true;
  readonly overhead = NONCE_BYTES + TAG_BYTES;
  constructor(readonly key: Buffer) {
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
    return opened(what, () => native.openRecord(sealed, this.key));
  }
}

export class PlainSealer implements Sealer {
  readonly encrypted = false;
  readonly overhead = CHECKSUM_BYTES;
  readonly key = null;

  seal(plaintext: Uint8Array): Buffer[] {
    // A copy: callers may reuse their buffer once seal returns.
    return [Buffer.from(plaintext), checksum(plaintext)];
  }

  open(sealed: Uint8Array, what: string): Buffer {
    return opened(what, () => native.openRecord(sealed, null));
  }
}

function checksum(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest().subarray(0, CHECKSUM_BYTES);
}

/** How native/blob_seal.h numbers the ways to compress a blob's body. */
export const COMPRESSION_CODES = { none: 0, lz4: 1, zstd: 2 } as const;
export type CompressionCode = (typeof COMPRESSION_CODES)[keyof typeof COMPRESSION_CODES];

/** Blobs from this size are sealed in a thread-pool job; smaller ones (most trees) cost less than the hand-off (~30 µs here). */
const SEAL_IN_POOL_BYTES = 16 * 1024;

/**
 * A blob compressed (LZ4 or zstd) when that shrinks it, then sealed as `sealer` seals (one
 * piece, the same format) in C (native/blob_seal.c): in a thread-pool job, so that
 * neither the compression nor the encryption holds up the JS thread, unless the blob
 * is small. `data` must stay unchanged until the promise settles.
 */
export function sealBlob(sealer: Sealer, data: Uint8Array, compression: CompressionCode): Promise<{ sealed: Buffer; compressed: boolean }> {
  if (data.length < SEAL_IN_POOL_BYTES) {
    try {
      const [sealed, compressed] = native.sealBlobSync(data, sealer.key, compression);
      return Promise.resolve({ sealed, compressed });
    } catch (e) {
      return Promise.reject(sealFailed(e));
    }
  }
  return new Promise((resolve, reject) => native.sealBlob(data, sealer.key, compression, (err, sealed, compressed) => {
    if (err) reject(sealFailed(err));
    else resolve({ sealed, compressed });
  }));
}

const sealFailed = (e: unknown): Error => errors.backend(`a blob ${(e as Error).message}`, { cause: e });

export function sealToBuffer(sealer: Sealer, plaintext: Uint8Array): Buffer {
  return Buffer.concat(sealer.seal(plaintext));
}

/** Blob ids: HMAC-SHA256 under the repository's id key. */
export class BlobHasher {
  constructor(readonly idKey: Buffer) {}
  id(data: Uint8Array): Buffer {
    return createHmac('sha256', this.idKey).update(data).digest();
  }
}

export const sha256 = (data: Uint8Array): Buffer => createHash('sha256').update(data).digest();
export const randomKey = (): Buffer => randomBytes(32);
