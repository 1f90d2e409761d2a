/**
 * The local filesystem side of the entry model: entries from lstat, byte-string
 * paths, owner names, extended attributes. Shared by capture and restore.
 */
import type { BigIntStats } from 'node:fs';
import { readFileSync } from 'node:fs';
import { getSystemErrorName } from 'node:util';
import { native, STAT_FIELDS, type SealingKeys } from '../native.js';
import { typeFromMode, type Entry, type Timestamp } from '../store/format/tree.js';

export const SLASH = Buffer.from('/');

/** Joins a directory path and one name, both byte strings. */
export const joinPath = (dir: Buffer, name: Buffer): Buffer =>
  dir.length === 1 && dir[0] === 0x2f ? Buffer.concat([SLASH, name]) : Buffer.concat([dir, SLASH, name]);

/** For messages and pattern matching: invalid UTF-8 bytes become U+FFFD. */
export const displayPath = (p: Buffer | string): string => (typeof p === 'string' ? p : p.toString('utf8'));


const NS = 1_000_000_000n;
export function timestampFromNs(ns: bigint): Timestamp {
  let sec = ns / NS;
  let nsec = ns % NS;
  if (nsec < 0n) { sec -= 1n; nsec += NS; }
  return [Number(sec), Number(nsec)];
}

export const sameTime = (a: Timestamp, b: Timestamp): boolean => a[0] === b[0] && a[1] === b[1];

/** Numeric id → name from /etc/passwd and /etc/group, read once. */
class NameTable {
  private table?: Map<number, string>;
  constructor(private readonly file: string) {}
  get(id: number): string | undefined {
    if (!this.table) {
      this.table = new Map();
      try {
        for (const line of readFileSync(this.file, 'utf8').split('\n')) {
          const [name, , idText] = line.split(':');
          if (name && idText && !this.table.has(Number(idText))) this.table.set(Number(idText), name);
        }
      } catch { /* no names: numeric ids only */ }
    }
    return this.table.get(id);
  }
}
const users = new NameTable('/etc/passwd');
const groups = new NameTable('/etc/group');

/** What capture needs of an lstat, with nanosecond times. */
export interface FileStat {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  ino: number;
  dev: number;
  rdev: number;
  blocks: number;
  atime: Timestamp;
  mtime: Timestamp;
  ctime: Timestamp;
  /** Bytes of its xattr name list, where a folder listing asked: 0, it has none; -1, not known. */
  xattrBytes: number;
}

export const isDirectory = (st: FileStat): boolean => typeFromMode(st.mode) === 'dir';
export const isRegularFile = (st: FileStat): boolean => typeFromMode(st.mode) === 'file';

export function statFromNode(st: BigIntStats): FileStat {
  return {
    mode: Number(st.mode), uid: Number(st.uid), gid: Number(st.gid), size: Number(st.size), nlink: Number(st.nlink),
    ino: Number(st.ino), dev: Number(st.dev), rdev: Number(st.rdev), blocks: Number(st.blocks),
    atime: timestampFromNs(st.atimeNs), mtime: timestampFromNs(st.mtimeNs), ctime: timestampFromNs(st.ctimeNs), xattrBytes: -1,
  };
}

/** The stat at `index` of a native stat array, or the error name of a failed lstat. */
function statFromArray(a: Float64Array, index: number): FileStat | string {
  const o = index * STAT_FIELDS;
  if (a[o + 15]) return `${getSystemErrorName(-a[o + 15])}: lstat failed`;
  return {
    mode: a[o], uid: a[o + 1], gid: a[o + 2], size: a[o + 3], nlink: a[o + 4], ino: a[o + 5], dev: a[o + 6], rdev: a[o + 7],
    blocks: a[o + 8], atime: [a[o + 9], a[o + 10]], mtime: [a[o + 11], a[o + 12]], ctime: [a[o + 13], a[o + 14]], xattrBytes: a[o + 16],
  };
}

export const sameContentStat = (a: FileStat, b: FileStat): boolean =>
  a.size === b.size && sameTime(a.mtime, b.mtime) && sameTime(a.ctime, b.ctime) && a.ino === b.ino;

/**
 * A folder's entries with their lstat, as one job listed them: the names in one Buffer
 * and the stats in one array, each entry's made into objects only when asked for, so a
 * folder of 100,000 files costs its names' bytes and 128 bytes of stat each.
 */
export class Listing {
  private readonly starts: Uint32Array;

  constructor(private readonly names: Buffer, private readonly stats: Float64Array) {
    const count = stats.length / STAT_FIELDS;
    this.starts = new Uint32Array(count + 1);
    for (let i = 0, pos = 0; i < count; i++) {
      this.starts[i] = pos;
      pos = names.indexOf(0, pos) + 1;
      this.starts[i + 1] = pos;
    }
  }

  get count(): number {
    return this.starts.length - 1;
  }

  /** The i-th name (a view of the listing's bytes). */
  name(i: number): Buffer {
    return this.names.subarray(this.starts[i], this.starts[i + 1] - 1);
  }

  /** The i-th entry's lstat, or the error name of a failed lstat. */
  stat(i: number): FileStat | string {
    return statFromArray(this.stats, i);
  }
}

/** Lists a folder with every entry's lstat in one round trip. */
export function scanDir(p: Buffer): Promise<Listing> {
  return new Promise((resolve, reject) => native.scanDir(p, (err, names, stats) => {
    if (err) reject(err);
    else resolve(new Listing(names, stats));
  }));
}

export interface SmallFile {
  /** A view of the buffer read into. */
  data: Buffer;
  before: FileStat;
  after: FileStat;
  /** With sealing keys, when read whole: its blob id and the blob sealed, ready to store. */
  blob?: { id: Buffer; sealed: Buffer; compressed: boolean };
}

/**
 * Reads a small file whole into `into` (one byte more than its size, if it fits, to notice
 * growth) with its stat before and after reading; `data` is a view of `into`.
 */
export function readSmallFile(p: Buffer, into: Buffer, sealing: SealingKeys | null): Promise<SmallFile> {
  return new Promise((resolve, reject) => native.readSmall(p, into, sealing, (err, bytesRead, before, after, id, sealed, compressed) => {
    if (err) reject(err);
    else {
      resolve({
        data: into.subarray(0, bytesRead), before: statFromArray(before, 0) as FileStat, after: statFromArray(after, 0) as FileStat,
        ...(id && sealed ? { blob: { id, sealed, compressed: !!compressed } } : {}),
      });
    }
  }));
}

/** An entry for `name` from its lstat; content fields are the caller's. */
export function entryFromStat(name: Buffer, st: FileStat): Entry | undefined {
  const type = typeFromMode(st.mode);
  if (!type) return undefined;
  const entry: Entry = {
    name, type, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, user: users.get(st.uid), group: groups.get(st.gid),
    size: type === 'file' || type === 'symlink' || type === 'dir' ? st.size : 0,
    mtime: st.mtime, atime: st.atime, ctime: st.ctime,
    inode: st.ino, device: st.dev, links: st.nlink, blocks: st.blocks,
  };
  if (entry.user === undefined) delete entry.user;
  if (entry.group === undefined) delete entry.group;
  if (type === 'chardev' || type === 'blockdev') entry.rdev = st.rdev;
  return entry;
}

/** Reads every extended attribute of `path` itself (not a link target), sorted by name. */
export function readXattrs(path: Buffer): [string, Buffer][] {
  let names: string[];
  try {
    names = native.listXattrs(path);
  } catch (e) {
    if (['ENOTSUP', 'ENOENT', 'EPERM'].includes((e as NodeJS.ErrnoException).code ?? '')) return [];
    throw e;
  }
  const result: [string, Buffer][] = [];
  for (const name of names.sort()) {
    try {
      result.push([name, native.getXattr(path, name)]);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENODATA') throw e; // removed meanwhile
    }
  }
  return result;
}
