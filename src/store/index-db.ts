/**
 * The local LevelDB index: blob id → pack location, plus the set of packs it
 * has read. It is a cache of what pack trailers say: losing or damaging it
 * loses nothing (`strata repair index` or the next open rebuilds it), and it
 * keeps memory bounded however large the repository grows (LevelDB, not a Map).
 *
 * Keys: "b" + blob id (32 bytes) → 45-byte location; "p" + pack id (32 bytes) → blob count;
 * "d" + device and inode (8 bytes each) of a source folder → the id of the tree it
 * had when last captured with this cache (a hint for renamed and moved folders).
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

export class BlobIndex {
  private constructor(private readonly db: Db, private readonly privateCopy?: string) {}

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
      return new BlobIndex(await openDb(dir));
    } catch (e) {
      if (isLocked(e)) return BlobIndex.openCopy(dir);
      await fs.rm(dir, { recursive: true, force: true });
      await fs.mkdir(dir, { recursive: true });
      return new BlobIndex(await openDb(dir));
    }
  }

  private static async openCopy(dir: string): Promise<BlobIndex> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const copy = await copyDatabase(dir);
      try {
        return new BlobIndex(await openDb(copy), copy);
      } catch {
        // A writer compacted while we copied: try again, then start empty.
        await fs.rm(copy, { recursive: true, force: true });
      }
    }
    const empty = await fs.mkdtemp(path.join(path.dirname(dir), `reader-${process.pid}-`));
    return new BlobIndex(await openDb(empty), empty);
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

  /** Records a durable pack and its blobs in one atomic batch. */
  async addPack(packId: string, blobs: BlobLocation[]): Promise<void> {
    const pid = Buffer.from(packId, 'hex');
    const count = Buffer.alloc(4);
    count.writeUInt32LE(blobs.length);
    const batch = this.db.batch();
    for (const b of blobs) batch.put(key(BLOB, b.id), encodeEntry(pid, b));
    batch.put(key(PACK, pid), count);
    await batch.write();
  }

  /** The tree the source folder (device, inode) had when last captured: a hint, never proof. */
  folderTree(device: number, inode: number): Buffer | undefined {
    return this.db.getSync(folderKey(device, inode));
  }

  async rememberFolders(folders: readonly FolderSeen[]): Promise<void> {
    const batch = this.db.batch();
    for (const f of folders) batch.put(folderKey(f.device, f.inode), f.tree);
    await batch.write();
  }

  async clear(): Promise<void> {
    await this.db.clear();
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
  const copy = await fs.mkdtemp(path.join(path.dirname(dir), `reader-${process.pid}-`));
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
    const pid = Number(/^reader-(\d+)-/.exec(name)?.[1]);
    if (!pid || pid === process.pid) continue;
    try {
      process.kill(pid, 0);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ESRCH') await fs.rm(path.join(parent, name), { recursive: true, force: true });
    }
  }
}

const isTable = (name: string): boolean => name.endsWith('.ldb') || name.endsWith('.sst');
