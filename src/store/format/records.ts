/**
 * Stored records other than trees: config, key file, pack trailer, snapshot.
 * Each has a format version and explicit fields; decode validates every field.
 */
import { errors } from '../errors.js';
import { decode, encode, Fields } from './codec.js';

export const ID_BYTES = 32;
const VERSION = 1;

export interface ChunkerParams {
  /** Seed of the gear table: each repository cuts at its own boundaries. */
  seed: Buffer;
  minSize: number;
  normSize: number;
  maxSize: number;
  maskS: number;
  maskL: number;
}

export interface RepoConfig {
  id: string;
  encrypted: boolean;
  chunker: ChunkerParams;
  /** Target size of a pack in bytes. */
  packSize: number;
  created: string;
  /** How blobs are compressed (where it shrinks them); absent in repositories made before the choice existed: LZ4. */
  compression?: Compression;
  /** Parity shards per stripe of 32 data shards of every pack (parity.ts); absent: none. */
  parity?: number;
}

export type Compression = 'lz4' | 'zstd';
export const COMPRESSIONS: readonly Compression[] = ['lz4', 'zstd'];

/**
 * Version 2 marks a config whose repository an older Strata must not read: one compressed
 * with zstd, which it would take for damage. LZ4 repositories stay version 1.
 */
const ZSTD_CONFIG_VERSION = 2;

export function encodeConfig(c: RepoConfig): Buffer {
  return encode({ v: c.compression === 'zstd' ? ZSTD_CONFIG_VERSION : VERSION, ...c });
}

export function decodeConfig(data: Uint8Array): RepoConfig {
  const f = Fields.of(decode(data, 'config'), 'config');
  f.version(ZSTD_CONFIG_VERSION);
  const ch = f.record_('chunker');
  return {
    id: f.string('id'),
    encrypted: f.bool('encrypted'),
    chunker: {
      seed: ch.bytes('seed', 32),
      minSize: ch.int('minSize'),
      normSize: ch.int('normSize'),
      maxSize: ch.int('maxSize'),
      maskS: ch.int('maskS'),
      maskL: ch.int('maskL'),
    },
    packSize: f.int('packSize'),
    created: f.string('created'),
    ...(f.has('compression') ? { compression: compressionOf(f) } : {}),
    ...(f.has('parity') ? { parity: f.int('parity') } : {}),
  };
}

function compressionOf(f: Fields): Compression {
  const c = f.string('compression') as Compression;
  if (!COMPRESSIONS.includes(c)) f.fail('compression', `one of ${COMPRESSIONS.join(', ')}`);
  return c;
}

export interface KeyFile {
  kdf: { N: number; r: number; p: number };
  salt: Buffer;
  /** The master keys, sealed under the passphrase-derived key (or plain in an unencrypted repository). */
  master: Buffer;
  host: string;
  created: string;
}

export function encodeKeyFile(k: KeyFile): Buffer {
  return encode({ v: VERSION, ...k });
}

export function decodeKeyFile(data: Uint8Array, what: string): KeyFile {
  const f = Fields.of(decode(data, what), what);
  f.version(VERSION);
  const kdf = f.record_('kdf');
  return {
    kdf: { N: kdf.int('N'), r: kdf.int('r'), p: kdf.int('p') },
    salt: f.bytes('salt'),
    master: f.bytes('master'),
    host: f.string('host'),
    created: f.string('created'),
  };
}

export interface MasterKeys {
  encryption: Buffer;
  id: Buffer;
}

export const encodeMasterKeys = (m: MasterKeys): Buffer => encode({ v: VERSION, encryption: m.encryption, id: m.id });

export function decodeMasterKeys(data: Uint8Array): MasterKeys {
  const f = Fields.of(decode(data, 'master keys'), 'master keys');
  return { encryption: f.bytes('encryption', 32), id: f.bytes('id', 32) };
}

export type BlobType = 'data' | 'tree';

/** Where a blob sits inside its pack. */
export interface BlobLocation {
  type: BlobType;
  id: Buffer;
  offset: number;
  length: number;
  rawLength: number;
  compressed: boolean;
}

export function encodeTrailer(blobs: BlobLocation[]): Buffer {
  return encode({
    v: VERSION,
    blobs: blobs.map((b) => [b.type === 'tree' ? 1 : 0, b.id, b.offset, b.length, b.rawLength, b.compressed]),
  });
}

export function decodeTrailer(data: Uint8Array, what: string): BlobLocation[] {
  const f = Fields.of(decode(data, what), what);
  f.version(VERSION);
  return f.array('blobs').map((row, i) => {
    if (!Array.isArray(row) || row.length !== 6) throw errors.corrupt(`${what}: blob ${i} is malformed`);
    const [t, id, offset, length, rawLength, compressed] = row as unknown[];
    if ((t !== 0 && t !== 1) || !(id instanceof Uint8Array) || id.length !== ID_BYTES ||
        !isCount(offset) || !isCount(length) || !isCount(rawLength) || typeof compressed !== 'boolean') {
      throw errors.corrupt(`${what}: blob ${i} is malformed`);
    }
    return { type: t === 1 ? 'tree' : 'data', id: Buffer.from(id), offset, length, rawLength, compressed };
  });
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;

export interface SnapshotSummary {
  files: number;
  dirs: number;
  others: number;
  /** Bytes of all files in the snapshot. */
  bytes: number;
  /** Files read this time (new or changed); the rest were reused from the parent. */
  filesRead: number;
  bytesRead: number;
  /** Further names of hard-linked files read under another name in this snapshot (neither read again nor unchanged). */
  linked?: number;
  /** Blobs and their sealed bytes added to the repository by this snapshot. */
  blobsAdded: number;
  bytesAdded: number;
  /** Source files that could not be read, or changed while read. */
  errors: { path: string; message: string }[];
  seconds: number;
}

export interface Snapshot {
  time: string;
  host: string;
  user: string;
  paths: string[];
  tags: string[];
  excludes: string[];
  parent?: string;
  tree: Buffer;
  summary: SnapshotSummary;
  /**
   * The xattr namespaces ("user", "security", "system", "trusted", …) anything in the
   * snapshot holds; absent in snapshots made before it was recorded. The mount answers
   * "not supported" for a namespace no snapshot holds, which tools remember per mount.
   */
  xattrNamespaces?: string[];
  /** Set on a snapshot `strata repair snapshots` wrote: the id of the damaged one it was made from. */
  repairedFrom?: string;
}

export function encodeSnapshot(s: Snapshot): Buffer {
  const { xattrNamespaces, ...rest } = s;
  return encode({ v: VERSION, ...rest, parent: s.parent ?? null, ...(xattrNamespaces ? { xattrNamespaces } : {}) });
}

export function decodeSnapshot(data: Uint8Array, what: string): Snapshot {
  const f = Fields.of(decode(data, what), what);
  f.version(VERSION);
  const s = f.record_('summary');
  const errorList = s.array('errors').map((e, i) => {
    const ef = Fields.of(e, `${what}.summary.errors[${i}]`);
    return { path: ef.string('path'), message: ef.string('message') };
  });
  const time = f.string('time');
  if (Number.isNaN(Date.parse(time))) f.fail('time', 'a date');
  return {
    time,
    host: f.string('host'),
    user: f.string('user'),
    paths: f.strings('paths'),
    tags: f.strings('tags'),
    excludes: f.strings('excludes'),
    parent: f.has('parent') ? f.string('parent') : undefined,
    tree: f.bytes('tree', ID_BYTES),
    summary: {
      files: s.int('files'), dirs: s.int('dirs'), others: s.int('others'), bytes: s.int('bytes'),
      filesRead: s.int('filesRead'), bytesRead: s.int('bytesRead'),
      blobsAdded: s.int('blobsAdded'), bytesAdded: s.int('bytesAdded'),
      errors: errorList, seconds: s.number('seconds'),
      ...(s.has('linked') ? { linked: s.int('linked') } : {}),
    },
    ...(f.has('xattrNamespaces') ? { xattrNamespaces: f.strings('xattrNamespaces') } : {}),
    ...(f.has('repairedFrom') ? { repairedFrom: f.string('repairedFrom') } : {}),
  };
}

export interface LockRecord {
  host: string;
  pid: number;
  /** The writer's process space (process.ts); locks of older versions have none and go stale by time only. */
  space?: string;
  /** ISO time of creation or last refresh. */
  time: string;
  /** ISO time of creation (locks of older versions have only `time`). */
  since?: string;
  exclusive: boolean;
  purpose: string;
}

export const encodeLock = (l: LockRecord): Buffer => encode({ v: VERSION, ...l });

export function decodeLock(data: Uint8Array, what: string): LockRecord {
  const f = Fields.of(decode(data, what), what);
  f.version(VERSION);
  return {
    host: f.string('host'), pid: f.int('pid'), time: f.string('time'), exclusive: f.bool('exclusive'), purpose: f.string('purpose'),
    ...(f.has('since') ? { since: f.string('since') } : {}),
    ...(f.has('space') ? { space: f.string('space') } : {}),
  };
}

/**
 * Packs that a prune will delete once nothing can need them (see prune.ts): written after
 * the packs' live blobs were copied elsewhere, deleted after the packs are.
 */
export interface DeletionRecord {
  /** ISO time the packs were scheduled, by the clock of the prune that did it. */
  time: string;
  host: string;
  packs: string[];
  /** Locks (object names) held when the record appeared: their owners may not know of it. Absent: wait for every lock. */
  waitFor?: string[];
  /** ISO time the packs were deleted: the record stays a while, so a reader that comes back later knows they were pruned, not lost. */
  done?: string;
}

export const encodeDeletion = (d: DeletionRecord): Buffer => encode({
  v: VERSION, time: d.time, host: d.host, packs: d.packs.map((p) => Buffer.from(p, 'hex')),
  ...(d.waitFor ? { waitFor: d.waitFor } : {}), ...(d.done ? { done: d.done } : {}),
});

export function decodeDeletion(data: Uint8Array, what: string): DeletionRecord {
  const f = Fields.of(decode(data, what), what);
  f.version(VERSION);
  const time = f.string('time');
  if (Number.isNaN(Date.parse(time))) f.fail('time', 'a date');
  const packs = f.array('packs').map((p, i) => {
    if (!(p instanceof Uint8Array) || p.length !== ID_BYTES) throw errors.corrupt(`${what}: pack ${i} is malformed`);
    return Buffer.from(p).toString('hex');
  });
  return {
    time, host: f.string('host'), packs, ...(f.has('waitFor') ? { waitFor: f.strings('waitFor') } : {}), ...(f.has('done') ? { done: f.string('done') } : {}),
  };
}
