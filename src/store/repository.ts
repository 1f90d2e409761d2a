/**
 * The repository: keys, config, packs, snapshots and the local index, on any
 * Backend. Consumers take the narrow roles in roles.ts.
 *
 * Write order keeps invariant 1 (nothing refers to data that is not durable):
 * blobs go into packs; a pack enters the index only after the backend saved it;
 * `flush` saves every pending pack, so a snapshot record saved after a flush
 * refers only to durable trees and chunks.
 *
 * Packs that a prune scheduled for deletion (`deletions/`) are condemned: their
 * blobs count as absent, so a backup stores them again rather than refer to a pack
 * about to go. `refresh` learns of new schedules, and of packs added or removed by
 * other processes.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { native, type SealingKeys } from '../native.js';
import type { Backend } from './backend/backend.js';
import { defaultChunkerParams } from './chunker.js';
import {
  AeadSealer, BlobHasher, COMPRESSION_CODES, DEFAULT_KDF, deriveKey, opened, openedInPool, PlainSealer, randomKey, sealBlob, sealToBuffer, sha256, type CompressionCode, type KdfParams, type Sealer,
} from './crypto.js';
import { errors, isStrataError } from './errors.js';
import {
  decodeConfig, decodeDeletion, decodeKeyFile, decodeMasterKeys, decodeSnapshot, encodeConfig, encodeDeletion, encodeKeyFile, encodeMasterKeys, encodeSnapshot,
  type BlobLocation as PackedBlob, type BlobType, type ChunkerParams, type Compression, type DeletionRecord, type MasterKeys, type RepoConfig, type Snapshot,
} from './format/records.js';
import { decodeTree, type Entry, type TreeBuilder } from './format/tree.js';
import { BlobIndex, type IndexEntry, type IndexedPack } from './index-db.js';
import { acquireLock, removeLocks, type Lock } from './lock.js';
import { encodeParity, healPack, parityObjectName, parityProblem, parityShardsFor, type Healed } from './parity.js';
import { Lru } from './lru.js';
import { PackWriter, packIdFromName, packObjectName, parsePackTrailer, readPackTrailer, type SavedPack } from './pack.js';
import type {
  BlobReader, BlobWriter, DirectReads, FolderMemory, FolderSeen, PackReader, PackVerdict, SnapshotLister, SnapshotRef, SnapshotWriter, TreeReader,
} from './roles.js';

/** Packs of 8 MiB: about 130,000 objects per terabyte, and little memory while one fills and one saves. */
const DEFAULT_PACK_SIZE = 8 * 1024 * 1024;
/** 2 parity shards per 32 (6.25 %): heals rot in up to 2 shards of every stripe, or a lost tail of 6 %. */
const DEFAULT_PARITY_PERCENT = 6;
/** Packs being saved at once; more blobs wait (bounded memory). */
const MAX_SAVING_PACKS = 1;
/**
 * Blobs at least this large are opened (authenticated, decompressed, checked) in a
 * thread-pool job, leaving the JS thread free: worth the hand-off (~30 µs here) above
 * some tens of microseconds of work.
 */
const OPEN_IN_POOL_BYTES = 64 * 1024;
/** Blobs of a pack that check opens at once (the thread pool has four threads). */
const OPENS_AT_ONCE = 4;
/** A reader that misses a blob syncs its index at most this often. */
const RESYNC_MS = 2000;
/** Blobs smaller than this are not worth compressing. */
const MIN_COMPRESS = 128;

export interface InitOptions {
  password?: string;
  /** false: an explicit choice for an unencrypted repository (no password). */
  encrypted?: boolean;
  kdf?: KdfParams;
  chunker?: ChunkerParams;
  packSize?: number;
  /** LZ4 by default; zstd stores less for more CPU (see the README's benchmark). */
  compression?: Compression;
  /** Parity of every pack in percent of its size (parity.ts), 6 by default; 0: none. */
  parityPercent?: number;
}

export interface OpenOptions {
  password?: string;
  /** Where the local index lives (default: $STRATA_CACHE_DIR or ~/.cache/strata). */
  cacheDir?: string;
  /** Readers may work from a private copy of an index another process holds. */
  readOnly?: boolean;
  /** Told about packs that could not be indexed (damaged). */
  onWarning?: (message: string) => void;
}

export function defaultCacheDir(): string {
  return process.env.STRATA_CACHE_DIR ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'strata');
}

async function exists(backend: Backend, name: string): Promise<boolean> {
  try {
    await backend.stat(name);
    return true;
  } catch (e) {
    if (isStrataError(e, 'NOT_FOUND')) return false;
    throw e;
  }
}

export class Repository implements BlobReader, TreeReader, BlobWriter, FolderMemory, PackReader, SnapshotLister, SnapshotWriter {
  private readonly hasher: BlobHasher;
  readonly sealing: SealingKeys;
  private readonly compression: CompressionCode;
  private readonly writers: Record<BlobType, PackWriter>;
  /** Ids queued in a pack that is not saved yet (hex), so a second copy is not stored. */
  private readonly pending = new Set<string>();
  private readonly saving = new Set<Promise<void>>();
  /** Parity saves under way: they follow their packs without holding up the next pack's save. */
  private readonly parityWrites = new Set<Promise<void>>();
  private savingError: unknown;
  /** Set by close: no pack is started after it (an interrupted backup may still have blobs on their way). */
  private closing = false;
  private readonly snapshotCache = new Map<string, Snapshot>();
  private readonly treeRegions: PackRegions;
  /** Told what was healed, and what could not be written back. */
  private warn: (message: string) => void = () => {};
  /** Heals in flight, by pack: readers of one damaged pack share one. */
  private readonly healing = new Map<string, Promise<Healed>>();
  /** Scheduled deletions as last read (object name → record), and the packs they condemn. */
  private deletionNames = new Set<string>();
  private deletions = new Map<string, DeletionRecord>();
  private condemned = new Set<string>();
  /** Packs that schedules carried out deleted; and packs found gone without one (lost), with their blob ids. */
  private pruned = new Set<string>();
  private readonly lost = new Map<string, Buffer[]>();
  /** Packs this process saved since the last sync began: not in that listing, yet not gone. */
  private savedSinceSync = new Set<string>();
  private resyncing?: Promise<unknown>;
  private syncing: Promise<unknown> = Promise.resolve();
  private resyncedAt = 0;

  private constructor(
    readonly backend: Backend,
    readonly config: RepoConfig,
    readonly sealer: Sealer,
    keys: MasterKeys,
    private readonly index: BlobIndex,
  ) {
    this.hasher = new BlobHasher(keys.id);
    this.compression = COMPRESSION_CODES[config.compression ?? 'lz4'];
    this.sealing = native.sealingKeys(sealer.key, keys.id, MIN_COMPRESS, this.compression);
    this.treeRegions = new PackRegions(backend);
    this.writers = {
      data: new PackWriter(backend, sealer, config.packSize, config.parity ?? 0),
      tree: new PackWriter(backend, sealer, config.packSize, config.parity ?? 0),
    };
  }

  get chunkerParams(): ChunkerParams {
    return this.config.chunker;
  }

  static async init(backend: Backend, opts: InitOptions): Promise<RepoConfig> {
    await backend.create?.();
    if (await exists(backend, 'config')) throw errors.alreadyExists(`a repository already exists at ${backend.location}`);
    const held = await repositoryObjectIn(backend);
    if (held) {
      throw errors.alreadyExists(`${backend.location} holds a repository's objects (${held}) but no config: ` +
        'a new repository here would leave them unreadable; open it as it is (its config copy is read), or choose an empty location');
    }
    const encrypted = opts.encrypted ?? true;
    if (encrypted && !opts.password) throw errors.usage('a password is needed to create an encrypted repository');
    const keys: MasterKeys = { encryption: randomKey(), id: randomKey() };
    const kdf = encrypted ? (opts.kdf ?? DEFAULT_KDF) : { N: 0, r: 0, p: 0 };
    const salt = randomBytes(16);
    const master = encrypted
      ? sealToBuffer(new AeadSealer(await deriveKey(opts.password!, salt, kdf)), encodeMasterKeys(keys))
      : encodeMasterKeys(keys);
    const keyFile = encodeKeyFile({ kdf, salt, master, host: os.hostname(), created: new Date().toISOString() });
    const parity = parityShardsFor(opts.parityPercent ?? DEFAULT_PARITY_PERCENT);
    const config: RepoConfig = {
      id: randomBytes(16).toString('hex'),
      encrypted,
      chunker: opts.chunker ?? defaultChunkerParams(),
      packSize: opts.packSize ?? DEFAULT_PACK_SIZE,
      created: new Date().toISOString(),
      ...(opts.compression && opts.compression !== 'lz4' ? { compression: opts.compression } : {}),
      ...(parity ? { parity } : {}),
    };
    // The key first: a config without a key would be a repository nobody can open. Each also has a copy:
    // without its config or every key, nothing in a repository can be read.
    const keyName = `keys/${sha256(keyFile).toString('hex')}`;
    await backend.save(keyName, keyFile);
    await backend.save(copyOf(keyName), keyFile);
    const sealedConfig = sealToBuffer(sealerFor(encrypted, keys), encodeConfig(config));
    await backend.save(copyOf('config'), sealedConfig);
    await backend.save('config', sealedConfig);
    return config;
  }

  static async open(backend: Backend, opts: OpenOptions): Promise<Repository> {
    const { found: sealedConfigs, unreadable } = await loadWithCopy(backend, 'config');
    for (const { name, error } of unreadable) opts.onWarning?.(`${name} cannot be read (${error.message}): its twin was read`);
    if (!sealedConfigs.length) {
      const held = await repositoryObjectIn(backend);
      if (held) throw errors.corrupt(`the repository at ${backend.location} has lost its config and the config's copy (it holds ${held})`);
      throw errors.notARepository(`there is no Strata repository at ${backend.location} (no config): create one with \`strata init\``);
    }
    const keys = await unlockKeys(backend, opts.password, opts.onWarning);
    const encrypted = keys.encrypted;
    const sealer = sealerFor(encrypted, keys.master);
    let config: RepoConfig | undefined;
    let damage: unknown;
    for (const { name, data } of sealedConfigs) {
      try {
        config = decodeConfig(sealer.open(data, name));
        if (name !== 'config') opts.onWarning?.(`the repository's config is missing or damaged: its copy ${name} was read`);
        break;
      } catch (e) {
        if (!isStrataError(e, 'CORRUPT')) throw e;
        damage ??= e;
      }
    }
    if (!config) throw damage;
    if (config.encrypted !== encrypted) throw errors.corrupt('config and key disagree on encryption');
    const cacheFolder = await cacheFolderFor(opts.cacheDir ?? defaultCacheDir(), config.id, backend.location);
    const index = await BlobIndex.open(path.join(cacheFolder, 'index'), { shared: !!opts.readOnly });
    const repo = new Repository(backend, config, sealer, keys.master, index);
    if (opts.onWarning) repo.warn = opts.onWarning;
    if (!opts.readOnly) {
      // Best effort: what cannot be put back now (a full disk, a bad sector in the way) waits for the next writer.
      await repo.mendCopies(sealedConfigs, keys.intact, keys.damaged, opts.onWarning)
        .catch((e) => opts.onWarning?.(`the config and key files could not be mended from their copies: ${(e as Error).message}`));
    }
    await repo.refresh(opts.onWarning, true);
    return repo;
  }

  /**
   * A writer puts back a config or key file that is missing or damaged from its intact twin,
   * and makes copies that a repository made before copies existed lacks.
   */
  private async mendCopies(configs: { name: string; data: Buffer }[], intactKeys: Map<string, Buffer>, damagedKeys: Set<string>,
    onWarning?: (message: string) => void): Promise<void> {
    const good = configs.find((c) => { try { decodeConfig(this.sealer.open(c.data, c.name)); return true; } catch { return false; } })!;
    for (const name of ['config', copyOf('config')]) {
      const held = configs.find((c) => c.name === name);
      if (held?.data.equals(good.data)) continue;
      await this.backend.save(name, good.data);
      if (held || name === 'config') onWarning?.(`${name} was ${held ? 'damaged' : 'missing'}: written again from its copy`);
    }
    for (const [keyName, data] of intactKeys) {
      for (const name of [keyName, copyOf(keyName)]) {
        if (!damagedKeys.has(name) && await exists(this.backend, name)) continue;
        await this.backend.save(name, data);
        if (damagedKeys.has(name)) onWarning?.(`key file ${name} was damaged: written again from its twin`);
      }
    }
  }

  /**
   * Reads the scheduled deletions again; when they changed (or with `sync`), the index
   * learns what other processes added and removed. Writers call it once they hold their
   * lock (lock() does), so a backup that started after a schedule knows of it.
   */
  async refresh(onWarning?: (message: string) => void, sync = false): Promise<boolean> {
    const names = new Set<string>();
    for await (const { name } of this.backend.list('deletions/')) names.add(name);
    const changed = names.size !== this.deletionNames.size || [...names].some((n) => !this.deletionNames.has(n));
    if (changed) {
      const deletions = new Map<string, DeletionRecord>();
      for (const name of names) {
        const record = this.deletions.get(name) ?? await this.loadDeletion(name).catch((e) => {
          if (!isStrataError(e, 'CORRUPT') && !isStrataError(e, 'NOT_FOUND')) throw e;
          // A damaged schedule condemns nothing here, and no prune can carry it out either.
          if (isStrataError(e, 'CORRUPT')) onWarning?.((e as Error).message);
          return undefined;
        });
        if (record) deletions.set(name, record);
      }
      this.deletionNames = names;
      this.deletions = deletions;
      const records = [...deletions.values()];
      this.condemned = new Set(records.filter((d) => !d.done).flatMap((d) => d.packs));
      this.pruned = new Set(records.filter((d) => d.done).flatMap((d) => d.packs));
    }
    if (changed || sync) await this.syncIndex(onWarning);
    return changed;
  }

  /**
   * Brings the index in line with the packs in the backend: indexes new ones (or all,
   * when the index was lost) and forgets those that are gone. A pack gone without a
   * prune is lost: reported, and its blobs count as absent, so the next backup of a
   * source that still has them stores them again.
   */
  syncIndex(onWarning?: (message: string) => void): Promise<{ packs: number; removed: number; damaged: string[] }> {
    // One at a time: two at once would clear each other's record of packs saved meanwhile and call them lost.
    const run = this.syncing.then(() => this.syncIndexNow(onWarning));
    this.syncing = run.catch(() => {});
    return run;
  }

  private async syncIndexNow(onWarning?: (message: string) => void): Promise<{ packs: number; removed: number; damaged: string[] }> {
    let packs = 0;
    const damaged: string[] = [];
    const listed = new Set<string>();
    this.savedSinceSync.clear();
    for await (const { name } of this.backend.list('packs/')) {
      const packId = packIdFromName(name);
      if (!/^[0-9a-f]{64}$/.test(packId)) continue;
      listed.add(packId);
      if (this.index.hasPack(packId)) continue;
      try {
        await this.index.addPack(packId, await this.packTrailer(packId));
        packs++;
      } catch (e) {
        if (!isStrataError(e, 'CORRUPT')) throw e;
        damaged.push(packId);
        onWarning?.(`${(e as Error).message}; its blobs are not indexed (run \`strata check\`)`);
      }
    }
    const gone: IndexedPack[] = [];
    for await (const p of this.index.packs()) if (!listed.has(p.pack) && !this.savedSinceSync.has(p.pack)) gone.push(p);
    for (const p of gone) {
      if (this.condemned.has(p.pack) || this.pruned.has(p.pack)) continue;
      this.lost.set(p.pack, p.blobs);
      onWarning?.(`pack ${p.pack} is missing from the repository (no prune deleted it): its ${p.blobs.length === 1 ? "blob is" : `${p.blobs.length} blobs are`} gone; run \`strata check\``);
    }
    if (gone.length) await this.forgetPacks(gone.map((p) => p.pack));
    return { packs, removed: gone.length, damaged };
  }

  /** The pack that held a blob, when this process found that pack lost (for check's report). */
  lostPackOf(id: Buffer): string | undefined {
    for (const [pack, blobs] of this.lost) if (blobs.some((b) => b.equals(id))) return pack;
    return undefined;
  }

  /** Drops packs that are gone from the index (a blob also in another pack stays, pointing there). */
  async forgetPacks(packIds: readonly string[]): Promise<void> {
    const trailers = new Map<string, Promise<PackedBlob[]>>();
    await this.index.removePacks(packIds, async (pack, id) => {
      let trailer = trailers.get(pack);
      if (!trailer) trailers.set(pack, (trailer = this.packTrailer(pack)));
      const blobs = await trailer.catch(() => [] as PackedBlob[]);
      return blobs.find((b) => b.id.equals(id));
    });
  }

  /** Throws the index away and rebuilds it from pack trailers (`strata repair index`). */
  async rebuildIndex(onWarning?: (message: string) => void): Promise<{ packs: number; removed: number; damaged: string[] }> {
    if (this.index.isPrivateCopy) {
      throw errors.locked('the local index is held by another Strata process on this machine (`strata serve` or a backup): ' +
        'stop it first (this process could only rebuild a private copy, thrown away when it ends)');
    }
    await this.index.clear();
    return this.syncIndex(onWarning);
  }

  /** Takes a lock, then learns of deletions scheduled before it (see refresh). `alone`: no second lock of this purpose. */
  async lock(purpose: string, opts: { exclusive?: boolean; alone?: boolean } = {}): Promise<Lock> {
    const lock = await acquireLock(this.backend, this.sealer, { exclusive: !!opts.exclusive, purpose, alone: opts.alone });
    try {
      await this.refresh();
    } catch (e) {
      await lock.release().catch(() => {});
      throw e;
    }
    return lock;
  }

  /**
   * The shared lock of a reader (restore, check). Storage that cannot be written (read-only
   * media, a repository of another user) gets none, with a warning: reading it must not fail.
   */
  async readLock(purpose: string, onWarning: (message: string) => void): Promise<Lock | undefined> {
    try {
      return await this.lock(purpose);
    } catch (e) {
      const cause = (e as { cause?: NodeJS.ErrnoException }).cause?.code;
      if (!isStrataError(e, 'BACKEND') || !['EROFS', 'EACCES', 'EPERM'].includes(cause ?? '')) throw e;
      onWarning(`the repository cannot be written (${cause}), so ${purpose} takes no lock: a prune elsewhere meanwhile could remove what it reads`);
      return undefined;
    }
  }

  removeLocks(all: boolean): Promise<number> {
    return removeLocks(this.backend, this.sealer, all);
  }

  // ---- BlobWriter

  blobId(data: Uint8Array): Buffer {
    return this.hasher.id(data);
  }

  hasBlob(id: Buffer): boolean {
    return this.usable(id) || this.pending.has(id.toString('hex'));
  }

  /** Indexed, in a pack no prune has scheduled for deletion. */
  private usable(id: Buffer): boolean {
    if (!this.condemned.size) return this.index.has(id);
    const entry = this.index.lookup(id);
    return !!entry && !this.condemned.has(entry.pack);
  }

  async storeBlob(type: BlobType, id: Buffer, data: Uint8Array): Promise<number> {
    const hex = this.claim(id);
    return hex ? this.sealAndAdd(type, id, hex, data) : 0;
  }

  async storeSealed(type: BlobType, id: Buffer, sealed: Buffer, rawLength: number, compressed: boolean): Promise<number> {
    return this.claim(id) ? this.addSealed(type, id, sealed, rawLength, compressed) : 0;
  }

  /** Marks a blob as on its way into a pack; undefined when the repository has it (unless `evenIfIndexed`) or it is on its way already. */
  private claim(id: Buffer, evenIfIndexed = false): string | undefined {
    const hex = id.toString('hex');
    if (this.pending.has(hex) || (!evenIfIndexed && this.usable(id))) return undefined;
    this.pending.add(hex);
    return hex;
  }

  private async addSealed(type: BlobType, id: Buffer, sealed: Buffer, rawLength: number, compressed: boolean): Promise<number> {
    const writer = this.writers[type];
    writer.add(type, id, [sealed], rawLength, compressed);
    if (writer.full) await this.startSaving(writer);
    return sealed.length;
  }

  /** Stores a blob again although the index has it (prune's repacking: the copy's pack replaces the old one in the index). */
  async copyBlob(type: BlobType, id: Buffer, data: Uint8Array): Promise<number> {
    const hex = this.claim(id, true);
    return hex ? this.sealAndAdd(type, id, hex, data) : 0;
  }

  private async sealAndAdd(type: BlobType, id: Buffer, hex: string, data: Uint8Array): Promise<number> {
    let sealed: Buffer;
    let compressed: boolean;
    try {
      ({ sealed, compressed } = await sealBlob(this.sealer, data, data.length >= MIN_COMPRESS ? this.compression : COMPRESSION_CODES.none));
    } catch (e) {
      this.pending.delete(hex); // else it would pass for stored
      throw e;
    }
    return this.addSealed(type, id, sealed, data.length, compressed);
  }

  async saveTree(tree: TreeBuilder): Promise<{ id: Buffer; added: number }> {
    const data = tree.encode();
    const id = this.blobId(data);
    return { id, added: await this.storeBlob('tree', id, data) };
  }

  async flush(): Promise<void> {
    for (const writer of Object.values(this.writers)) {
      if (!writer.empty) await this.startSaving(writer, true);
    }
    await Promise.all(this.saving);
    await Promise.all(this.parityWrites);
    this.throwSavingError();
  }

  /** Saves the writer's pack once a save slot is free; unless `flushing`, only if it is still full then (another caller may have saved it meanwhile). */
  private async startSaving(writer: PackWriter, flushing = false): Promise<void> {
    while (this.saving.size >= MAX_SAVING_PACKS) await Promise.race(this.saving);
    this.throwSavingError();
    if (this.closing) throw errors.interrupted('the repository was closed while a pack was being written');
    if (writer.empty || (!flushing && !writer.full)) return;
    // A failure to save the pack or to index it ends the writing: flush and the next store throw it.
    const job = writer.save().then((pack) => this.packSaved(pack)).catch((e: unknown) => { this.savingError ??= e; });
    const tracked = job.finally(() => this.saving.delete(tracked));
    this.saving.add(tracked);
  }

  private async packSaved(pack: SavedPack): Promise<void> {
    if (pack.parity) {
      const tracked = pack.parity.catch((e: unknown) => { this.savingError ??= e; }).finally(() => this.parityWrites.delete(tracked));
      this.parityWrites.add(tracked);
    }
    this.savedSinceSync.add(pack.id);
    await this.index.addPack(pack.id, pack.blobs);
    for (const b of pack.blobs) this.pending.delete(b.id.toString('hex'));
  }

  private throwSavingError(): void {
    if (this.savingError !== undefined) throw this.savingError;
  }

  // ---- FolderMemory

  lastTreeOf(device: number, inode: number): Buffer | undefined {
    const tree = this.index.folderTree(device, inode);
    return tree && this.hasBlob(tree) ? tree : undefined;
  }

  rememberFolders(folders: readonly FolderSeen[]): Promise<void> {
    return this.index.rememberFolders(folders);
  }

  // ---- BlobReader, TreeReader

  blobSize(id: Buffer): number | undefined {
    return this.index.lookup(id)?.rawLength;
  }

  /** The pack the index places a blob in (undefined when the index does not know the blob). */
  packOf(id: Buffer): string | undefined {
    return this.locate(id)?.pack;
  }

  /**
   * Where a blob is; when the index does not know it, or its pack is gone, the index
   * is synced once and asked again: another process may have stored it since this one
   * synced, or a prune moved it to a new pack.
   */
  private async located(type: BlobType, id: Buffer, failed?: IndexEntry): Promise<IndexEntry> {
    const entry = this.index.lookup(id);
    if (entry && entry.pack !== failed?.pack) return entry;
    await this.resync();
    const again = this.index.lookup(id);
    if (again && again.pack !== failed?.pack) return again;
    throw failed ? packMissing(failed.pack, type, id) : errors.corrupt(`${type} blob ${id.toString('hex')} is missing from the repository`);
  }

  /** A sync of the index for a reader that missed something; at most one every few seconds (a damaged repository misses often). */
  private resync(): Promise<unknown> {
    if (!this.resyncing || Date.now() - this.resyncedAt > RESYNC_MS) {
      this.resyncedAt = Date.now();
      this.resyncing = this.syncIndex();
    }
    return this.resyncing;
  }

  async loadBlob(type: BlobType, id: Buffer): Promise<Buffer> {
    const hex = id.toString('hex');
    let entry = await this.located(type, id);
    let sealed: Buffer | undefined;
    for (let attempt = 0; !sealed; attempt++) {
      try {
        sealed = type === 'tree' ? await this.treeRegions.load(entry.pack, entry.offset, entry.length)
          : await this.backend.load(packObjectName(entry.pack), { offset: entry.offset, length: entry.length });
      } catch (e) {
        if (!isStrataError(e, 'NOT_FOUND')) throw e;
        if (attempt > 0) throw packMissing(entry.pack, type, id, e);
        entry = await this.located(type, id, entry);
      }
    }
    try {
      if (sealed.length !== entry.length) throw errors.corrupt(`${type} blob ${hex} in pack ${entry.pack} is cut short: the pack is truncated`);
      return await this.openBlob(entry, id, sealed);
    } catch (e) {
      const pack = await this.healedAfter(e, entry.pack);
      return this.openBlob(entry, id, pack.subarray(entry.offset, entry.offset + entry.length));
    }
  }

  /**
   * After a read of a pack failed: the pack healed from its parity, when the failure was
   * damage and the repository has parity; else the failure again (with why healing failed).
   */
  private async healedAfter(failure: unknown, packId: string): Promise<Buffer> {
    if (!isStrataError(failure, 'CORRUPT') || !this.config.parity) throw failure;
    try {
      return (await this.healedPack(packId)).pack;
    } catch (why) {
      throw errors.corrupt(`${failure.message}; ${(why as Error).message}`, { cause: failure });
    }
  }

  /**
   * A damaged pack made whole from its parity and written back (where the storage lets it),
   * so every later read finds it intact; CORRUPT when it cannot be healed. `read`: the pack as
   * already read. Readers of one pack share one heal.
   */
  private healedPack(packId: string, read?: Buffer): Promise<Healed> {
    let healing = this.healing.get(packId);
    if (!healing) {
      healing = (async () => {
        const name = packObjectName(packId);
        const parity = await this.backend.load(parityObjectName(packId)).catch((e) => {
          throw isStrataError(e, 'NOT_FOUND') ? errors.corrupt(`pack ${packId} has no parity to heal it from`) : e;
        });
        const bytes = read ?? await this.backend.load(name).catch((e) => {
          if (isStrataError(e, 'NOT_FOUND')) throw errors.corrupt(`pack ${packId} is gone: parity cannot bring back a whole pack`);
          throw e;
        });
        const healed = await healPack(bytes, parity, packId);
        // Intact as stored (the damage was elsewhere, a blob the pack never held whole): nothing to write back.
        if (healed.pack.equals(bytes)) return healed;
        this.treeRegions.forget(packId);
        const done = `pack ${packId} healed from its parity (${healed.shardsRebuilt} of ${healed.shards} shards rebuilt)`;
        try {
          await this.backend.save(name, healed.pack);
          this.warn(`${done} and written back`);
        } catch (e) {
          this.warn(`${done}, but it could not be written back: ${(e as Error).message}`);
        }
        return healed;
      })().finally(() => this.healing.delete(packId));
      this.healing.set(packId, healing);
    }
    return healing;
  }

  /** Authenticates, decompresses and re-checks the id of a sealed blob (large ones in the thread pool). */
  private async openBlob(entry: { pack: string; type: BlobType; rawLength: number; compressed: boolean }, id: Buffer, sealed: Buffer): Promise<Buffer> {
    const what = `${entry.type} blob ${id.toString('hex')} in pack ${entry.pack}`;
    const { key } = this.sealer;
    const { idKey } = this.hasher;
    if (entry.rawLength < OPEN_IN_POOL_BYTES) return opened(what, () => native.openBlob(sealed, key, idKey, entry.compressed, entry.rawLength, id));
    return openedInPool(what, () => new Promise<Buffer>((resolve, reject) => native.openBlobAsync(sealed, key, idKey, entry.compressed, entry.rawLength, id,
      (err, raw) => (err ? reject(err) : resolve(raw)))));
  }

  /**
   * The config, the key files and their copies, as check sees them: an original that is
   * missing or damaged, a copy that is damaged (a copy not made yet is no problem: the
   * next writer makes it).
   */
  async verifyHeaders(): Promise<{ object: string; message: string }[]> {
    const problems: { object: string; message: string }[] = [];
    const mending = ': the next writer puts it back from its copy';
    const unreadable = (n: string, error: Error) => problems.push({ object: n, message: `cannot be read (${error.message})${mending}` });
    const configs = await loadWithCopy(this.backend, 'config');
    for (const { name, error } of configs.unreadable) unreadable(name, error);
    for (const { name, data } of configs.found) {
      try {
        decodeConfig(this.sealer.open(data, name));
      } catch (e) {
        if (!isStrataError(e, 'CORRUPT')) throw e;
        problems.push({ object: name, message: `damaged (${(e as Error).message})${name === 'config' ? mending : ''}` });
      }
    }
    if (!await exists(this.backend, 'config')) problems.push({ object: 'config', message: `missing${mending}` });
    const keyNames = new Set<string>();
    for await (const { name } of this.backend.list('keys/')) keyNames.add(name);
    for await (const { name } of this.backend.list(copyOf('keys/'))) keyNames.add(name.slice('copies/'.length));
    for (const name of keyNames) {
      const held = await loadWithCopy(this.backend, name);
      for (const { name: n, error } of held.unreadable) unreadable(n, error);
      for (const { name: n, data } of held.found) {
        if (sha256(data).toString('hex') !== name.slice('keys/'.length)) problems.push({ object: n, message: 'damaged: its bytes no longer match its name' });
      }
      if (![...held.found, ...held.unreadable].some((h) => h.name === name)) problems.push({ object: name, message: `missing${mending}` });
    }
    return problems;
  }

  // ---- PackReader

  async *listPacks(): AsyncIterable<{ id: string; size: number }> {
    for await (const { name, size } of this.backend.list('packs/')) {
      const id = packIdFromName(name);
      if (/^[0-9a-f]{64}$/.test(id)) yield { id, size };
    }
  }

  /** A pack's trailer; one that cannot be read is healed from the pack's parity where it can be. */
  async packTrailer(id: string): Promise<PackedBlob[]> {
    try {
      return await readPackTrailer(this.backend, id, this.sealer);
    } catch (e) {
      return parsePackTrailer(await this.healedAfter(e, id), id, this.sealer);
    }
  }

  indexedBlobsOf(pack: string): Buffer[] | undefined {
    return this.index.blobsOf(pack);
  }

  async verifyPack(id: string): Promise<PackVerdict> {
    let bytes = await this.backend.load(packObjectName(id));
    const readBytes = bytes.length;
    let matchesName = sha256(bytes).toString('hex') === id;
    let healed: PackVerdict['healed'];
    let parity: PackVerdict['parity'];
    if (this.config.parity && !matchesName) {
      try {
        const h = await this.healedPack(id, bytes);
        bytes = h.pack;
        matchesName = true;
        healed = { shards: h.shardsRebuilt, of: h.shards };
      } catch (e) {
        if (!isStrataError(e, 'CORRUPT')) throw e;
        parity = { problem: (e as Error).message, written: false };
      }
    } else if (this.config.parity) {
      parity = await this.mendParity(id, bytes);
    }
    const verdict: PackVerdict = {
      bytes: readBytes, matchesName, blobs: [], damaged: [], ...(healed ? { healed } : {}), ...(parity ? { parity } : {}),
    };
    try {
      verdict.blobs = parsePackTrailer(bytes, id, this.sealer);
    } catch (e) {
      if (!isStrataError(e, 'CORRUPT')) throw e;
      verdict.trailerDamage = (e as Error).message;
      return verdict;
    }
    // A few at once: the large ones open on the thread pool side by side, and only a few opened copies are held.
    const queue = [...verdict.blobs];
    await Promise.all(Array.from({ length: OPENS_AT_ONCE }, async () => {
      for (let b = queue.shift(); b; b = queue.shift()) {
        try {
          await this.openBlob({ ...b, pack: id }, b.id, bytes.subarray(b.offset, b.offset + b.length));
        } catch (e) {
          if (!isStrataError(e, 'CORRUPT')) throw e;
          verdict.damaged.push({ type: b.type, id: b.id, message: (e as Error).message });
        }
      }
    }));
    return verdict;
  }

  /** Reads an intact pack's parity and writes it anew when it is missing, damaged or not this pack's. */
  private async mendParity(id: string, pack: Buffer): Promise<PackVerdict['parity']> {
    const name = parityObjectName(id);
    const problem = await this.backend.load(name).then((held) => parityProblem(held, id, pack.length), (e) => {
      if (!isStrataError(e, 'NOT_FOUND')) throw e;
      return `pack ${id} has no parity`;
    });
    if (!problem) return undefined;
    try {
      await this.backend.save(name, await encodeParity(pack, this.config.parity!));
      return { problem, written: true };
    } catch (e) {
      return { problem: `${problem}, and it could not be written: ${(e as Error).message}`, written: false };
    }
  }

  /**
   * For a reader that opens blobs itself, straight from the pack files (the mount's data
   * path in C): the keys and where the packs are. Undefined when the backend has no local files.
   */
  directReads(): DirectReads | undefined {
    const packRoot = this.backend.localPath?.('packs');
    if (!packRoot) return undefined;
    return {
      packRoot, encryption: this.sealer.key, id: this.hasher.idKey,
      locate: (id) => {
        const entry = this.index.lookup(id);
        return entry && { pack: entry.pack, offset: entry.offset, length: entry.length, rawLength: entry.rawLength, compressed: entry.compressed };
      },
    };
  }

  async loadTree(id: Buffer): Promise<Entry[]> {
    return decodeTree(await this.loadBlob('tree', id), `tree ${id.toString('hex')}`);
  }

  // ---- what prune works with: the index's packs and blobs, and the deletion schedule

  indexedPacks(): AsyncIterable<IndexedPack> {
    return this.index.packs();
  }

  indexedBlobs(): AsyncIterable<[Buffer, IndexEntry]> {
    return this.index.blobs();
  }

  locate(id: Buffer): IndexEntry | undefined {
    return this.index.lookup(id);
  }

  /** Deletion schedules, standing and carried out, as the last refresh read them. */
  scheduledDeletions(): ReadonlyMap<string, DeletionRecord> {
    return this.deletions;
  }

  /** Saves a schedule under `name` (a new one, or the same with the locks it waits for). */
  async saveDeletion(name: string, record: DeletionRecord): Promise<void> {
    await this.backend.save(name, sealToBuffer(this.sealer, encodeDeletion(record)));
  }

  async removeDeletion(name: string): Promise<void> {
    await this.backend.remove(name);
  }

  private async loadDeletion(name: string): Promise<DeletionRecord> {
    const what = `deletion schedule ${name}`;
    return decodeDeletion(this.sealer.open(await this.backend.load(name), what), what);
  }

  /** Removes a snapshot record (forget): its data stays until a prune finds it unused. */
  async removeSnapshot(id: string): Promise<void> {
    await this.backend.remove(`snapshots/${id}`);
    this.snapshotCache.delete(id);
  }

  // ---- snapshots

  async saveSnapshot(snapshot: Snapshot): Promise<string> {
    const sealed = sealToBuffer(this.sealer, encodeSnapshot(snapshot));
    const id = sha256(sealed).toString('hex');
    await this.backend.save(`snapshots/${id}`, sealed);
    return id;
  }

  async loadSnapshot(id: string): Promise<Snapshot> {
    const what = `snapshot ${id}`;
    const data = await this.backend.load(`snapshots/${id}`);
    if (sha256(data).toString('hex') !== id) throw errors.corrupt(`${what} does not match its name: it is damaged`);
    return decodeSnapshot(this.sealer.open(data, what), what);
  }

  /**
   * Every snapshot, oldest first. Records are immutable, so each is read once per
   * process (a mount lists them every few seconds). A damaged record is reported
   * through `onWarning`, not fatal.
   */
  async listSnapshots(onWarning?: (message: string) => void): Promise<SnapshotRef[]> {
    const refs: SnapshotRef[] = [];
    for await (const { name } of this.backend.list('snapshots/')) {
      const id = name.slice('snapshots/'.length);
      try {
        let snapshot = this.snapshotCache.get(id);
        if (!snapshot) this.snapshotCache.set(id, (snapshot = await this.loadSnapshot(id)));
        refs.push({ id, snapshot });
      } catch (e) {
        if (!isStrataError(e, 'CORRUPT')) throw e;
        onWarning?.((e as Error).message);
      }
    }
    return refs.sort((a, b) => a.snapshot.time.localeCompare(b.snapshot.time) || a.id.localeCompare(b.id));
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.allSettled(this.saving);
    await Promise.allSettled(this.parityWrites);
    await this.index.close();
    await this.backend.close();
  }
}

/**
 * Trees are small and read many at a time (a listing, a walk, a diff), and a snapshot's
 * trees sit together in few packs: they are cut from regions of their pack read whole,
 * so a walk costs a few reads instead of one per folder (and one request per region on
 * object storage). Packs never change, so a region never goes stale.
 */
class PackRegions {
  private readonly regions: Lru<string, Promise<Buffer>>;
  constructor(private readonly backend: Backend, private readonly regionBytes = 256 * 1024, limitBytes = 4 * 1024 * 1024) {
    this.regions = new Lru(Math.max(1, Math.floor(limitBytes / regionBytes)));
  }

  /** Drops what is held of a pack (it was healed: what was read of it may be damaged). */
  forget(pack: string): void {
    this.regions.deleteWhere((key) => key.startsWith(`${pack}:`));
  }

  async load(pack: string, offset: number, length: number): Promise<Buffer> {
    const first = Math.floor(offset / this.regionBytes);
    const last = Math.floor((offset + length - 1) / this.regionBytes);
    if (length <= 0 || last > first + 1) return this.backend.load(packObjectName(pack), { offset, length });
    const parts: Buffer[] = [];
    for (let i = first; i <= last; i++) parts.push(await this.region(pack, i));
    const joined = parts.length === 1 ? parts[0] : Buffer.concat(parts);
    const start = offset - first * this.regionBytes;
    return joined.subarray(start, start + length);
  }

  private region(pack: string, index: number): Promise<Buffer> {
    const key = `${pack}:${index}`;
    let region = this.regions.get(key);
    if (!region) {
      region = this.backend.load(packObjectName(pack), { offset: index * this.regionBytes, length: this.regionBytes });
      region.catch(() => this.regions.delete(key)); // a failed read is tried again next time
      this.regions.set(key, region);
    }
    return region;
  }
}

const packMissing = (pack: string, type: BlobType, id: Buffer, cause?: unknown): Error =>
  errors.corrupt(`pack ${pack} is missing (needed for ${type} blob ${id.toString('hex')})`, cause ? { cause } : undefined);

function sealerFor(encrypted: boolean, keys: MasterKeys): Sealer {
  return encrypted ? new AeadSealer(keys.encryption) : new PlainSealer();
}

/**
 * A repository's cache folder: named by its id, and by its location too when another
 * location holds the same id (a replica, `strata replicate`), so that each has an index
 * of its own packs. The first location to open an id claims the plain name.
 */
async function cacheFolderFor(root: string, id: string, location: string): Promise<string> {
  /** Whether the folder is this location's: marked so, or unmarked and now marked. */
  const claim = async (folder: string): Promise<boolean> => {
    const mark = path.join(folder, 'location');
    const held = await fs.readFile(mark, 'utf8').catch(() => undefined);
    if (held !== undefined) return held === location;
    await fs.mkdir(folder, { recursive: true });
    await fs.writeFile(mark, location);
    return true;
  };
  const home = path.join(root, id);
  if (await claim(home)) return home;
  const own = path.join(root, `${id}-${sha256(Buffer.from(location)).toString('hex').slice(0, 12)}`);
  await claim(own);
  return own;
}

/** Where the copy of a config or key file lives. */
const copyOf = (name: string): string => `copies/${name}`;

interface HeldWithCopy {
  /** The object and its copy that were read, original first. */
  found: { name: string; data: Buffer }[];
  /** Those that exist but could not be read (a bad sector): counted as missing, so that a writer puts them back. */
  unreadable: { name: string; error: Error }[];
}

/** Reads an object and its copy; throws only when neither can be read and one failed for another reason than absence. */
async function loadWithCopy(backend: Backend, name: string): Promise<HeldWithCopy> {
  const held: HeldWithCopy = { found: [], unreadable: [] };
  for (const n of [name, copyOf(name)]) {
    try {
      held.found.push({ name: n, data: await backend.load(n) });
    } catch (e) {
      if (!isStrataError(e, 'NOT_FOUND')) held.unreadable.push({ name: n, error: e as Error });
    }
  }
  if (!held.found.length && held.unreadable.length) throw held.unreadable[0]!.error;
  return held;
}

/** The first repository object found at a location under these prefixes ("keys/…", "packs/…"), if any. */
export async function repositoryObjectIn(backend: Backend, prefixes = ['keys/', 'copies/', 'snapshots/', 'packs/']): Promise<string | undefined> {
  for (const prefix of prefixes) {
    for await (const { name } of backend.list(prefix)) return name;
  }
  return undefined;
}

interface UnlockedKeys {
  master: MasterKeys;
  encrypted: boolean;
  /** Intact key files by their name in keys/, and the names (in keys/ or copies/keys/) found damaged. */
  intact: Map<string, Buffer>;
  damaged: Set<string>;
}

/**
 * Tries the password on every key file and its copy. A key file is named by the hash
 * of its bytes, so damage is told from a wrong password: WRONG_PASSWORD when no intact
 * key opens, CORRUPT when none opens and some were damaged.
 */
async function unlockKeys(backend: Backend, password: string | undefined, onWarning?: (message: string) => void): Promise<UnlockedKeys> {
  const names = new Set<string>();
  for await (const { name } of backend.list('keys/')) names.add(name);
  for await (const { name } of backend.list(copyOf('keys/'))) names.add(name.slice('copies/'.length));
  if (!names.size) throw errors.corrupt(`the repository at ${backend.location} has no key files (keys/ is empty or missing)`);
  const intact = new Map<string, Buffer>();
  const damaged = new Set<string>();
  let unlocked: { master: MasterKeys; encrypted: boolean } | undefined;
  for (const name of names) {
    // Every file and its copy are hashed, so a damaged copy is found (and mended) while its original is intact.
    const read = await loadWithCopy(backend, name);
    for (const { name: n, error } of read.unreadable) {
      damaged.add(n);
      onWarning?.(`key file ${n} cannot be read (${error.message})`);
    }
    const good = read.found.filter((held) => {
      if (sha256(held.data).toString('hex') === name.slice('keys/'.length)) return true;
      damaged.add(held.name);
      return false;
    });
    for (const held of good) {
      intact.set(name, held.data);
      if (unlocked) break;
      const key = decodeKeyFile(held.data, `key ${held.name}`);
      if (key.kdf.N === 0) {
        unlocked = { master: decodeMasterKeys(key.master), encrypted: false };
        break;
      }
      if (!password) throw errors.wrongPassword('this repository is encrypted: give its password (STRATA_PASSWORD or STRATA_PASSWORD_FILE)');
      const sealer = new AeadSealer(await deriveKey(password, key.salt, key.kdf));
      try {
        unlocked = { master: decodeMasterKeys(sealer.open(key.master, `key ${held.name}`)), encrypted: true };
      } catch (e) {
        if (!isStrataError(e, 'CORRUPT')) throw e;
      }
      break; // an intact file that did not open: its twin, if intact, holds the same bytes
    }
  }
  if (damaged.size) onWarning?.(`damaged key files (unreadable, or their bytes no longer match their names): ${[...damaged].join(', ')}`);
  if (unlocked) return { ...unlocked, intact, damaged };
  if (damaged.size && intact.size < names.size) {
    throw errors.corrupt(`no intact key of the repository at ${backend.location} opens with this password, and ${[...damaged].join(', ')} ` +
      'are damaged (with no intact twin): if the password is right, its key is lost');
  }
  throw errors.wrongPassword(`wrong password: no key of the repository at ${backend.location} opens with it`);
}
