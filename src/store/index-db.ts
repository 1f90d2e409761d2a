/**
 * The local LevelDB index: blob id → pack location, plus the set of packs it
 * has read. It is a cache of what pack trailers say: losing or damaging it
 * loses nothing (`strata repair index` or the next open rebuilds it), and it
 * keeps memory bounded however large the repository grows (LevelDB, not a Map).
 *
 * Keys: "b" + blob id (32 bytes) → 45-byte location; "p" + pack id (32 bytes) → the
 * ids of the pack's blobs (so a pack that prune removed, or that was lost, can be
 * dropped from the index without reading it); "d" + device and inode (8 bytes each)
 * of a source folder → the id of the tree it had when last captured with this cache
 * (a hint for renamed and moved folders); "v" → the layout's version (an index of
 * another layout is rebuilt).
 *
 * LevelDB lets one process open a database. Processes that only read
 * (restore, ls, the mount) open a private copy instead: hard links to the
 * immutable table files plus a copy of the small log and manifest, then catch
 * up from pack trailers like any stale index. So a mount never keeps a
 * backup from writing, and a backup never keeps a reader out.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Level } from 'level';
import { errors } from './errors.js';
import type { BlobLocation, BlobType } from './format/records.js';
import { processSpace, writerGone } from './process.js';
import type { FolderSeen } from './roles.js';

export interface IndexEntry {
  pack: string;
  type: BlobType;
  offset: number;
  length: number;
  rawLength: number;
  compressed: boolean;
}

const ENTRY_BYTES = 45;
const BLOB = 0x62; // "b"
const PACK = 0x70; // "p"
const FOLDER = 0x64; // "d"
const LAYOUT_KEY = Buffer.from('v');
/** 2: pack records list their blob ids. */
const LAYOUT = Buffer.from([2]);

const key = (prefix: number, id: Buffer): Buffer => {
  const k = Buffer.allocUnsafe(33);
  k[0] = prefix;
  id.copy(k, 1);
  return k;
};

const folderKey = (device: number, inode: number): Buffer => {
  const k = Buffer.allocUnsafe(17);
  k[0] = FOLDER;
  k.writeBigUInt64BE(BigInt(device), 1);
  k.writeBigUInt64BE(BigInt(inode), 9);
  return k;
};

function encodeEntry(packId: Buffer, b: BlobLocation): Buffer {
  const v = Buffer.allocUnsafe(ENTRY_BYTES);
  packId.copy(v, 0);
  v.writeUInt32LE(b.offset, 32);
  v.writeUInt32LE(b.length, 36);
  v.writeUInt32LE(b.rawLength, 40);
  v[44] = (b.type === 'tree' ? 1 : 0) | (b.compressed ? 2 : 0);
  return v;
}

function decodeEntry(v: Buffer): IndexEntry {
  return {
    pack: v.subarray(0, 32).toString('hex'),
    offset: v.readUInt32LE(32),
    length: v.readUInt32LE(36),
    rawLength: v.readUInt32LE(40),
    type: v[44] & 1 ? 'tree' : 'data',
    compressed: (v[44] & 2) !== 0,
  };
}

type Db = Level<Buffer, Buffer>;

/** The keys of one kind: the prefix byte and anything after it. */
const range = (prefix: number) => ({ gte: Buffer.from([prefix]), lt: Buffer.from([prefix + 1]) });

/** The blob ids a pack record lists (32 bytes each, back to back). */
function idsIn(record: Buffer | undefined): Buffer[] {
  const ids: Buffer[] = [];
  for (let at = 0; record && at + 32 <= record.length; at += 32) ids.push(record.subarray(at, at + 32));
  return ids;
}

export interface IndexedPack {
  pack: string;
  blobs: Buffer[];
}

export class BlobIndex {
  private constructor(private readonly db: Db, private readonly privateCopy?: string) {}

  private static async ready(db: Db, privateCopy?: string): Promise<BlobIndex> {
    const index = new BlobIndex(db, privateCopy);
    if (!LAYOUT.equals(db.getSync(LAYOUT_KEY) ?? Buffer.alloc(0))) {
      await db.clear(); // a cache of another layout: learned again from the packs
      await db.put(LAYOUT_KEY, LAYOUT);
    }
    return index;
  }

  /**
   * Opens the index in `dir`. A writer (`shared: false`) opens it exclusively;
   * when another writer holds it (a `strata backup` while `strata serve` runs),
   * the second works on a private copy: the index is a cache, so its additions
   * are simply learned again from the packs by the next open. A reader
   * (`shared: true`) always works on a private copy, so it never keeps a writer
   * out, however long it runs (a mount). A damaged database is thrown away:
   * packs are the truth.
   */
  static async open(dir: string, opts: { shared: boolean }): Promise<BlobIndex> {
    try {
      await fs.mkdir(dir, { recursive: true });
    } catch (e) {
      throw errors.backend(`cannot create the index cache at ${dir}: ${(e as Error).message} (set STRATA_CACHE_DIR or --cache-dir)`, { cause: e });
    }
    if (opts.shared) return BlobIndex.openCopy(dir);
    try {
      return await BlobIndex.ready(await openDb(dir));
    } catch (e) {
      if (isLocked(e)) return BlobIndex.openCopy(dir);
      await fs.rm(dir, { recursive: true, force: true });
      await fs.mkdir(dir, { recursive: true });
      return BlobIndex.ready(await openDb(dir));
    }
  }

  private static async openCopy(dir: string): Promise<BlobIndex> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const copy = await copyDatabase(dir);
      try {
        return await BlobIndex.ready(await openDb(copy), copy);
      } catch {
        // A writer compacted while we copied: try again, then start empty.
        await fs.rm(copy, { recursive: true, force: true });
      }
    }
    const empty = await fs.mkdtemp(path.join(path.dirname(dir), readerPrefix()));
    return BlobIndex.ready(await openDb(empty), empty);
  }

  lookup(id: Buffer): IndexEntry | undefined {
    const v = this.db.getSync(key(BLOB, id));
    return v ? decodeEntry(v) : undefined;
  }

  has(id: Buffer): boolean {
    return this.db.getSync(key(BLOB, id)) !== undefined;
  }

  hasPack(packId: string): boolean {
    return this.db.getSync(key(PACK, Buffer.from(packId, 'hex'))) !== undefined;
  }

  /** The blob ids recorded for a pack; undefined when the pack is not indexed. */
  blobsOf(packId: string): Buffer[] | undefined {
    const record = this.db.getSync(key(PACK, Buffer.from(packId, 'hex')));
    return record && idsIn(record);
  }

  /** True when this process works on a private copy (another process holds the index). */
  get isPrivateCopy(): boolean {
    return this.privateCopy !== undefined;
  }

  /** Records a durable pack and its blobs in one atomic batch (a blob already indexed elsewhere now points here). */
  async addPack(packId: string, blobs: BlobLocation[]): Promise<void> {
    const pid = Buffer.from(packId, 'hex');
    const batch = this.db.batch();
    for (const b of blobs) batch.put(key(BLOB, b.id), encodeEntry(pid, b));
    batch.put(key(PACK, pid), Buffer.concat(blobs.map((b) => b.id)));
    await this.write(batch);
  }

  /**
   * Forgets a pack that is gone from the backend. Its blobs' entries go, except where they
   * point to another pack; a blob whose entry pointed here but that another indexed pack
   * also holds (a duplicate from concurrent backups) is pointed there instead.
   */
  async removePacks(packIds: readonly string[], locationIn: (pack: string, id: Buffer) => Promise<BlobLocation | undefined>): Promise<void> {
    const gone = new Set(packIds);
    const orphans: Buffer[] = [];
    const batch = this.db.batch();
    for (const packId of packIds) {
      const pid = Buffer.from(packId, 'hex');
      for (const id of this.blobsOfPack(pid)) {
        if (this.lookup(id)?.pack === packId) orphans.push(id);
      }
      batch.del(key(PACK, pid));
    }
    for (const id of orphans) batch.del(key(BLOB, id));
    if (orphans.length) {
      const wanted = new Set(orphans.map((id) => id.toString('hex')));
      for await (const { pack, blobs } of this.packs()) {
        if (gone.has(pack)) continue;
        for (const id of blobs) {
          if (!wanted.has(id.toString('hex'))) continue;
          const location = await locationIn(pack, id);
          if (!location) continue;
          wanted.delete(id.toString('hex'));
          batch.put(key(BLOB, id), encodeEntry(Buffer.from(pack, 'hex'), location));
        }
        if (!wanted.size) break;
      }
    }
    await this.write(batch);
  }

  private blobsOfPack(pid: Buffer): Buffer[] {
    return idsIn(this.db.getSync(key(PACK, pid)));
  }

  /** Every indexed pack with its blob ids, in pack id order. */
  async *packs(): AsyncIterable<IndexedPack> {
    for await (const [k, v] of this.db.iterator(range(PACK))) yield { pack: k.subarray(1).toString('hex'), blobs: idsIn(v) };
  }

  /** Every indexed blob with where it is, in blob id order. */
  async *blobs(): AsyncIterable<[Buffer, IndexEntry]> {
    for await (const [k, v] of this.db.iterator(range(BLOB))) yield [k.subarray(1), decodeEntry(v)];
  }

  /** The tree the source folder (device, inode) had when last captured: a hint, never proof. */
  folderTree(device: number, inode: number): Buffer | undefined {
    return this.db.getSync(folderKey(device, inode));
  }

  async rememberFolders(folders: readonly FolderSeen[]): Promise<void> {
    const batch = this.db.batch();
    for (const f of folders) batch.put(folderKey(f.device, f.inode), f.tree);
    await this.write(batch);
  }

  /** Writes a batch; a full or failing cache disk is a clear error (the index is a cache: nothing stored is lost). */
  private async write(batch: ReturnType<Db['batch']>): Promise<void> {
    try {
      await batch.write();
    } catch (e) {
      const where = `the local index at ${this.db.location}`;
      if (/No space left on device/.test((e as Error).message)) {
        throw errors.noSpace(`no space left on the cache disk of ${where}: free some, or set STRATA_CACHE_DIR to a disk with room; nothing stored was lost`, { cause: e });
      }
      throw errors.backend(`cannot write ${where}: ${(e as Error).message}`, { cause: e });
    }
  }

  async clear(): Promise<void> {
    await this.db.clear();
    await this.db.put(LAYOUT_KEY, LAYOUT);
  }

  async close(): Promise<void> {
    await this.db.close();
    if (this.privateCopy) await fs.rm(this.privateCopy, { recursive: true, force: true });
  }
}

async function openDb(dir: string): Promise<Db> {
  // Every open table file keeps its index and filter blocks in memory: with 10 million
  // chunks (~460 table files) LevelDB's default of 1000 open files cost ~200 MiB of RSS.
  // 64 keeps a backup against such an index at ~180 MiB, about as fast.
  const db = new Level<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer', maxOpenFiles: 64 });
  await db.open();
  return db;
}

function isLocked(e: unknown): boolean {
  const err = e as { code?: string; cause?: { code?: string } };
  return err.code === 'LEVEL_LOCKED' || err.cause?.code === 'LEVEL_LOCKED';
}

/** A private copy of a database that another process may have open (next to it, so table files can be hard-linked). */
async function copyDatabase(dir: string): Promise<string> {
  await sweepDeadCopies(path.dirname(dir));
  const copy = await fs.mkdtemp(path.join(path.dirname(dir), readerPrefix()));
  const names = await fs.readdir(dir);
  // Manifest and log first: table files they name are linked after, and a table is only deleted after a newer manifest exists.
  const ordered = [...names.filter((n) => !isTable(n)), ...names.filter(isTable)];
  for (const name of ordered) {
    if (name === 'LOCK') continue;
    const from = path.join(dir, name);
    const to = path.join(copy, name);
    // Table files never change once written: link them. Log and manifest grow: copy them.
    const done = isTable(name) ? fs.link(from, to).catch(() => fs.copyFile(from, to)) : fs.copyFile(from, to);
    await done.catch((e: NodeJS.ErrnoException) => { if (e.code !== 'ENOENT') throw e; });
  }
  return copy;
}

/** Removes the private copies of reader processes that are gone (killed before they could clean up). */
async function sweepDeadCopies(parent: string): Promise<void> {
  for (const name of await fs.readdir(parent).catch(() => [] as string[])) {
    const reader = /^reader-([0-9a-f]{12})-(\d+)-/.exec(name);
    if (reader && writerGone(reader[1], Number(reader[2]))) await fs.rm(path.join(parent, name), { recursive: true, force: true });
  }
}

/** Private copies are named by their reader (process space and pid), so that the next reader knows which are left over. */
const readerPrefix = (): string => `reader-${processSpace()}-${process.pid}-`;

const isTable = (name: string): boolean => name.endsWith('.ldb') || name.endsWith('.sst');
