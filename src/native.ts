/**
 * The compiled addon in native/ (see native/strata_native.c): xattrs, mknod,
 * SEEK_DATA/SEEK_HOLE, nanosecond utimensat, the C FastCDC cut, and sealing and
 * opening blobs (native/blob_seal.c, native/blob_open.c, the latter shared with the
 * mount's data path), and Reed–Solomon parity (native/rs.c).
 */
import { createRequire } from 'node:module';

export type PathLike = Buffer | string;

/** An opaque handle made by sealingKeys: JS cannot read the keys back from it. */
export type SealingKeys = { readonly __sealingKeys: unique symbol };

export interface Native {
  cdcCut(buf: Uint8Array, start: number, end: number, eof: boolean, gear: Uint32Array,
    minSize: number, normSize: number, maxSize: number, maskS: number, maskL: number): number;
  listXattrs(path: PathLike): string[];
  getXattr(path: PathLike, name: string): Buffer;
  setXattr(path: PathLike, name: string, value: Buffer): void;
  mknod(path: PathLike, mode: number, rdev: number): void;
  /** Offset of the next data at or after `offset`, or -1 past the last data. */
  seekData(fd: number, offset: number): number;
  /** Offset of the next hole at or after `offset` (end of file counts as a hole), or -1. */
  seekHole(fd: number, offset: number): number;
  utimesNs(path: PathLike, atimeSec: number, atimeNsec: number, mtimeSec: number, mtimeNsec: number): void;
  /** Lists a folder and lstats every entry in one thread-pool job: the names one after another, each ended by a NUL; 17 stat fields per entry (STAT_FIELDS). */
  scanDir(path: PathLike, callback: (err: Error | undefined, names: Buffer, stats: Float64Array) => void): void;
  /** Reads a whole small file into `into` (up to its size + 1 byte) in one thread-pool job, with fstat before and after. */
  /**
   * Reads a small file whole into `into` with its stat before and after. Given sealing keys, the
   * same job also gives the content's blob id and the blob sealed (when the file did not outgrow `into`).
   */
  readSmall(path: PathLike, into: Buffer, sealing: SealingKeys | null, callback: (err: Error | undefined, bytesRead: number,
    before: Float64Array, after: Float64Array, id?: Buffer, sealed?: Buffer, compressed?: boolean) => void): void;
  /** sealBlob on the JS thread, for small blobs (a hand-off to the pool costs more than sealing them). */
  sealBlobSync(data: Uint8Array, encryption: Buffer | null, compression: number): [sealed: Buffer, compressed: boolean];
  /** A handle on the keys (and the size from which to compress) for jobs that hash and seal what they read. */
  sealingKeys(encryption: Buffer | null, idKey: Buffer, minCompress: number, compression: number): SealingKeys;
  /** Creates `path` (which must not exist; never through a symlink) with `data`, mode 0600, in one thread-pool job. */
  writeNew(path: PathLike, data: Buffer, callback: (err: Error | undefined) => void): void;
  /** Authenticates and opens a sealed record (encryption key null: an unencrypted repository); throws code DAMAGED. */
  openRecord(sealed: Uint8Array, encryption: Buffer | null): Buffer;
  /** Opens a sealed blob: authenticated, decompressed when `compressed`, its id checked (HMAC under idKey); throws code DAMAGED. */
  openBlob(sealed: Uint8Array, encryption: Buffer | null, idKey: Buffer, compressed: boolean, rawLength: number, id: Buffer): Buffer;
  /** openBlob in a thread-pool job (for large blobs: the JS thread is free meanwhile); `sealed` must stay unchanged until the callback. */
  openBlobAsync(sealed: Uint8Array, encryption: Buffer | null, idKey: Buffer, compressed: boolean, rawLength: number, id: Buffer,
    callback: (err: Error | undefined, raw: Buffer) => void): void;
  /** Compressed (compression: 0 none, 1 LZ4, 2 zstd) when that shrinks the data, then sealed as openBlob opens it, in a thread-pool job; `data` must stay unchanged until the callback. */
  sealBlob(data: Uint8Array, encryption: Buffer | null, compression: number, callback: (err: Error | undefined, sealed: Buffer, compressed: boolean) => void): void;
  /** Rebuilds the shards of a stripe (k data shards, then m parity shards, of shardSize bytes each) whose indices `lost` holds, in place; err (code DAMAGED) when more are lost than there is parity. */
  rsRebuild(stripe: Buffer, k: number, m: number, shardSize: number, lost: Buffer, callback: (err: Error | undefined) => void): void;
  /** CRC-32C of data (on the JS thread). */
  crc32c(data: Uint8Array): number;
  /** A whole pack's shard hashes (CRC-32C, 4 bytes each: data shards, then parity shards stripe by stripe) and parity shards into `out`, in one thread-pool job. */
  rsPackParity(pack: Buffer, shardSize: number, stripes: number, m: number, out: Buffer, callback: (err: Error | undefined) => void): void;
}

/** Fields per entry in scanDir/readSmall stat arrays. */
export const STAT_FIELDS = 17;

const require = createRequire(import.meta.url);

function load(): Native {
  try {
    return require('../native/build/Release/strata_native.node') as Native;
  } catch (cause) {
    throw new Error('the native addon is not built: run `npm install` (or `npm run install`) in the checkout', { cause });
  }
}

export const native: Native = load();
