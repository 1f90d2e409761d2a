/**
 * The local LevelDB index: blob id → pack location, plus the set of packs it
 * has read. It is a cache of what pack trailers say: losing or damaging it
 * loses nothing (`strata repair index` or the next open rebuilds it), and it
 * keeps memory bounded however large the repository grows (LevelDB, not a Map).
 *
 * Keys: "b" + blob id (32 bytes) → 45-byte location; "p" + pack id (32 bytes) → blob count.
 *
 * LevelDB lets one process open a database. A second process that only reads
 * (restore, ls, the mount while a backup runs) opens a private copy instead:
 * hard links to the immutable table files plus a copy of the small log and
 * manifest, then catches up from pack trailers like any stale index.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Level } from 'level';
import { errors } from './errors.js';
import type { BlobLocation, BlobType } from './format/records.js';

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

const key = (prefix: number, id: Buffer): Buffer => {
  const k = Buffer.allocUnsafe(33);
  k[0] = prefix;
  id.copy(k, 1);
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
   * Opens (or creates) the index in `dir`. `shared: true` accepts a private
   * copy when another process holds the database (for readers); a writer
   * gets LOCKED instead. A damaged database is thrown away and starts empty.
   */
  static async open(dir: string, opts: { shared: boolean }): Promise<BlobIndex> {
    try {
      await fs.mkdir(dir, { recursive: true });
    } catch (e) {
      throw errors.backend(`cannot create the index cache at ${dir}: ${(e as Error).message} (set STRATA_CACHE_DIR or --cache-dir)`, { cause: e });
    }
    try {
      return new BlobIndex(await openDb(dir));
    } catch (e) {
      if (isLocked(e)) {
        if (!opts.shared) {
          throw errors.locked(`the index at ${dir} is in use by another strata process on this machine; wait for it to finish`, { cause: e });
        }
        const copy = await copyDatabase(dir);
        return new BlobIndex(await openDb(copy), copy);
      }
      // Anything else means a damaged cache: start over, packs are the truth.
      await fs.rm(dir, { recursive: true, force: true });
      await fs.mkdir(dir, { recursive: true });
      return new BlobIndex(await openDb(dir));
    }
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

  /** Every pack the index has read. */
  async *packs(): AsyncIterable<string> {
    for await (const k of this.db.keys({ gte: Buffer.from([PACK]), lt: Buffer.from([PACK + 1]) })) {
      yield k.subarray(1).toString('hex');
    }
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
  const db = new Level<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await db.open();
  return db;
}

function isLocked(e: unknown): boolean {
  const err = e as { code?: string; cause?: { code?: string } };
  return err.code === 'LEVEL_LOCKED' || err.cause?.code === 'LEVEL_LOCKED';
}

/** A consistent private copy of a database another process has open. */
async function copyDatabase(dir: string): Promise<string> {
  const copy = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-index-'));
  for (const name of await fs.readdir(dir)) {
    if (name === 'LOCK') continue;
    const from = path.join(dir, name);
    const to = path.join(copy, name);
    // Table files never change once written: link them. Log and manifest grow: copy them.
    if (name.endsWith('.ldb') || name.endsWith('.sst')) await fs.link(from, to).catch(() => fs.copyFile(from, to));
    else await fs.copyFile(from, to).catch((e) => { if (e.code !== 'ENOENT') throw e; });
  }
  return copy;
}
