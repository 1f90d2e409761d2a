/**
 * The narrow slices of a repository that its consumers take. Capture takes a
 * BlobWriter, restore and the mount take a TreeReader and a BlobReader; nothing
 * outside src/store/ names the Repository class for its work.
 */
import type { SealingKeys } from '../native.js';
import type { Entry, TreeBuilder } from './format/tree.js';
import type { BlobLocation as PackedBlob, BlobType, ChunkerParams, Snapshot } from './format/records.js';

export interface BlobReader {
  /** Loads, authenticates, decompresses and re-checks the id of a blob. */
  loadBlob(type: BlobType, id: Buffer): Promise<Buffer>;
  /** Raw length of a stored blob, without loading it (undefined if unknown). */
  blobSize(id: Buffer): number | undefined;
}

export interface TreeReader {
  loadTree(id: Buffer): Promise<Entry[]>;
}

export interface BlobWriter {
  /** How this repository cuts files into chunks (its config's: the same everywhere, so that chunks deduplicate). */
  readonly chunkerParams: ChunkerParams;
  blobId(data: Uint8Array): Buffer;
  hasBlob(id: Buffer): boolean;
  /**
   * Compresses, seals and queues a blob for a pack; resolves when `data` may be
   * reused (and waits while too many packs are being saved: backpressure).
   * Returns the sealed bytes added, 0 when the repository already had it.
   */
  storeBlob(type: BlobType, id: Buffer, data: Uint8Array): Promise<number>;
  /** For native jobs that hash and seal what they read (a small file in one hand-off). */
  readonly sealing: SealingKeys;
  /** Stores a blob sealed with `sealing` (its id made with the same keys); as storeBlob otherwise. */
  storeSealed(type: BlobType, id: Buffer, sealed: Buffer, rawLength: number, compressed: boolean): Promise<number>;
  /** Stores a tree; returns its id and the sealed bytes added. */
  saveTree(tree: TreeBuilder): Promise<{ id: Buffer; added: number }>;
  /** Saves every pending pack: afterwards everything stored is durable. */
  flush(): Promise<void>;
}

/**
 * What capture remembers of a source between backups, in the local cache: the tree
 * each folder (by device and inode) had when last captured. A renamed or moved folder
 * is then compared with its old tree instead of with nothing, so its files are not
 * read again. A hint, never proof: each file is still matched by inode, size and times.
 */
export interface FolderMemory {
  /** The folder's last tree, if remembered and still in the repository. */
  lastTreeOf(device: number, inode: number): Buffer | undefined;
  /** Call once the trees are durable (after a flush). */
  rememberFolders(folders: readonly FolderSeen[]): Promise<void>;
}

export interface FolderSeen {
  device: number;
  inode: number;
  tree: Buffer;
}

export interface SnapshotRef {
  id: string;
  snapshot: Snapshot;
}

export interface SnapshotLister {
  listSnapshots(): Promise<SnapshotRef[]>;
}

export interface SnapshotWriter {
  saveSnapshot(snapshot: Snapshot): Promise<string>;
}

/** Where a stored blob lies: which pack, at which offset, how long sealed and raw. */
export interface BlobLocation {
  pack: string;
  offset: number;
  length: number;
  rawLength: number;
  compressed: boolean;
}

/**
 * For readers that open blobs themselves from a repository's pack files on a local disk
 * (the mount's data path in C): the keys, the folder of packs/xx/<id>, and the index.
 */
export interface DirectReads {
  packRoot: string;
  /** null: an unencrypted repository. */
  encryption: Buffer | null;
  /** The key blob ids are made with (HMAC-SHA256). */
  id: Buffer;
  locate(id: Buffer): BlobLocation | undefined;
}

/**
 * For check: the packs as the backend holds them, and what the index records of them.
 */
export interface PackReader {
  /** Every pack object, with its size. */
  listPacks(): AsyncIterable<{ id: string; size: number }>;
  /** The blobs a pack's trailer lists (CORRUPT when it cannot be read). */
  packTrailer(id: string): Promise<PackedBlob[]>;
  /** Reads a pack whole: whether its bytes still hash to its name, and which blobs fail to open; heals it from its parity where it can. */
  verifyPack(id: string): Promise<PackVerdict>;
  /** The blob ids the index records for a pack; undefined when it is not indexed. */
  indexedBlobsOf(pack: string): Buffer[] | undefined;
  /** Where the index places a blob. */
  locate(id: Buffer): (BlobLocation & { type: BlobType }) | undefined;
  /** The pack that held a blob, when that pack was found gone without a prune. */
  lostPackOf(id: Buffer): string | undefined;
  /** Every indexed blob (check looks for trees no snapshot reaches). */
  indexedBlobs(): AsyncIterable<[Buffer, { type: BlobType }]>;
}

export interface PackVerdict {
  bytes: number;
  /** False: the pack's bytes changed since it was written (or it was replaced by another). */
  matchesName: boolean;
  /** Set when the trailer cannot be read; `blobs` is then empty. */
  trailerDamage?: string;
  blobs: PackedBlob[];
  damaged: { type: BlobType; id: Buffer; message: string }[];
  /** Healed from its parity (and written back): how many of its shards were rebuilt. The rest of the verdict is of the healed bytes. */
  healed?: { shards: number; of: number };
  /** Its parity was missing, damaged or made for other bytes, and was written anew (`written`) or could not be. */
  parity?: { problem: string; written: boolean };
}
