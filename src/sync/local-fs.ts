/**
 * The local filesystem side of the entry model: entries from lstat, byte-string
 * paths, owner names, extended attributes. Shared by capture and restore.
 */
import type { BigIntStats } from 'node:fs';
import { readFileSync } from 'node:fs';
import { native } from '../native.js';
import type { Entry, EntryType, Timestamp } from '../store/format/tree.js';

export const SLASH = Buffer.from('/');

/** Joins a directory path and one name, both byte strings. */
export const joinPath = (dir: Buffer, name: Buffer): Buffer =>
  dir.length === 1 && dir[0] === 0x2f ? Buffer.concat([SLASH, name]) : Buffer.concat([dir, SLASH, name]);

/** For messages and pattern matching: invalid UTF-8 bytes become U+FFFD. */
export const displayPath = (p: Buffer | string): string => (typeof p === 'string' ? p : p.toString('utf8'));

const S_IFMT = 0o170000;
const TYPE_BITS: [number, EntryType][] = [
  [0o100000, 'file'], [0o040000, 'dir'], [0o120000, 'symlink'], [0o010000, 'fifo'],
  [0o020000, 'chardev'], [0o060000, 'blockdev'], [0o140000, 'socket'],
];
export const typeFromMode = (mode: number): EntryType | undefined => TYPE_BITS.find(([bits]) => (mode & S_IFMT) === bits)?.[1];
export const modeBitsOf = (type: EntryType): number => TYPE_BITS.find(([, t]) => t === type)![0];

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

/** An entry for `name` from its lstat (bigint, for nanoseconds); content fields are the caller's. */
export function entryFromStat(name: Buffer, st: BigIntStats): Entry | undefined {
  const mode = Number(st.mode);
  const type = typeFromMode(mode);
  if (!type) return undefined;
  const uid = Number(st.uid);
  const gid = Number(st.gid);
  const entry: Entry = {
    name, type, mode: mode & 0o7777, uid, gid, user: users.get(uid), group: groups.get(gid),
    size: type === 'file' || type === 'symlink' ? Number(st.size) : 0,
    mtime: timestampFromNs(st.mtimeNs), atime: timestampFromNs(st.atimeNs), ctime: timestampFromNs(st.ctimeNs),
    inode: Number(st.ino), device: Number(st.dev), links: Number(st.nlink),
  };
  if (entry.user === undefined) delete entry.user;
  if (entry.group === undefined) delete entry.group;
  if (type === 'chardev' || type === 'blockdev') entry.rdev = Number(st.rdev);
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
