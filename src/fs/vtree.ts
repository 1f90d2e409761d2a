/**
 * The browsable view of a repository as a pure virtual tree: folders are listed
 * whole (each child with its attributes, xattrs, link target and a ref to list
 * or read it further), files are read at an offset. No FUSE here: the mount
 * adapter (mount.ts) hands these listings to the C inode table, and the tests
 * drive the view directly. Names and link targets are byte strings, as stored.
 *
 *   /snapshots/<YYYY-MM-DD_HH-MM-SS>/…   every snapshot (local time; same second: "-<id>")
 *   /snapshots/latest → newest
 *   /hosts/<host>/<time>/…, /tags/<tag>/<time>/…
 *   /@GMT-YYYY.MM.DD-HH.MM.SS/…          UTC names Samba's vfs_shadow_copy2 understands
 *   /history/<path>/…                    every distinct version of a file or folder at <path>
 *
 * A stored folder is named by its tree id and the snapshot it is shown in (the
 * scope, which inode numbers are made from); a virtual folder by its path in the
 * layout above. Virtual listings follow the snapshot list: they are rebuilt when
 * it changes, and listeners are told so that caches of them can be dropped.
 */
import { createHash } from 'node:crypto';
import { modeBitsOf, rootEntry, type Entry, type Timestamp } from '../store/format/tree.js';
import type { BlobReader, DirectReads, SnapshotRef, TreeReader } from '../store/roles.js';
import { Errno, FsError } from './errno.js';
import { ChunkCache, OpenFile } from './file-reader.js';
import { Lru } from '../store/lru.js';

/** What a shown inode number is made from: the snapshot (scope), and the device and inode at capture. */
export interface InoKey {
  scope: Buffer;
  device: number;
  inode: number;
}

export interface Attr {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  rdev: number;
  /** Allocated 512-byte blocks, as stored (sparse files hold fewer than their size). */
  blocks: number;
  atime: Timestamp;
  mtime: Timestamp;
  ctime: Timestamp;
  ino: InoKey;
}

export type DirRef =
  | { kind: 'tree'; tree: Buffer; scope: Buffer }
  | { kind: 'virtual'; path: Buffer[] };

/** A stored file: the entry at `index` of tree `tree`, shown in snapshot `scope`. */
export interface FileRef {
  tree: Buffer;
  index: number;
  scope: Buffer;
}

export interface ViewEntry {
  name: Buffer;
  attr: Attr;
  xattrs: [string, Buffer][];
  target?: Buffer;
  dir?: DirRef;
  file?: FileRef;
  /** Sparse files: the [start, end) byte ranges that hold data. */
  extents?: [number, number][];
  /** A stored file's chunk ids, in order. */
  chunks?: Buffer[];
  /** A folder whose listing follows the snapshot list. */
  volatile?: boolean;
}

/** What the view needs of a repository: trees, blobs, and the current snapshot list. */
export interface ViewSource extends TreeReader, BlobReader {
  /** The snapshots now (oldest first); called again when the view refreshes. */
  snapshots(): Promise<SnapshotRef[]>;
  /** Keys and pack files for reading data in C, where the repository is on a local disk. */
  directReads?(): DirectReads | undefined;
}

export interface ViewOptions {
  /** How long a snapshot list is trusted before it is read again on use (ms). */
  refreshMs?: number;
  /** Entries of decoded trees kept in memory (all trees together). */
  treeCacheEntries?: number;
  /** Bytes of file chunks kept in memory. */
  chunkCacheBytes?: number;
  /** Told about a snapshot that cannot be read while listing versions (once per snapshot). */
  onWarning?: (message: string) => void;
  now?: () => number;
}

export const ROOT: DirRef = { kind: 'virtual', path: [] };

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');
const SNAPSHOTS = Buffer.from('snapshots');
const HOSTS = Buffer.from('hosts');
const TAGS = Buffer.from('tags');
const HISTORY = Buffer.from('history');
const LATEST = Buffer.from('latest');

/** "2026-11-22_08-00-00" in local time. */
export function snapshotFolderName(time: string): string {
  const d = new Date(time);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}_${pad(d.getHours())}-${pad(d.getMinutes())}-${pad(d.getSeconds())}`;
}

/** "@GMT-2026.11.22-08.00.00" in UTC, as Samba's shadow_copy2 expects. */
export function gmtName(time: string | number): string {
  const d = new Date(time);
  return `@GMT-${d.getUTCFullYear()}.${pad(d.getUTCMonth() + 1)}.${pad(d.getUTCDate())}-${pad(d.getUTCHours())}.${pad(d.getUTCMinutes())}.${pad(d.getUTCSeconds())}`;
}

/** Folder names for snapshots: by time, with a short id when two fall in the same second. */
function namedByTime(snaps: SnapshotRef[]): [string, SnapshotRef][] {
  const counts = new Map<string, number>();
  for (const s of snaps) counts.set(snapshotFolderName(s.snapshot.time), (counts.get(snapshotFolderName(s.snapshot.time)) ?? 0) + 1);
  return snaps.map((s) => {
    const base = snapshotFolderName(s.snapshot.time);
    return [counts.get(base)! > 1 ? `${base}-${s.id.slice(0, 8)}` : base, s];
  });
}

/**
 * @GMT names: shadow_copy2 parses nothing but the time, so a snapshot that falls in an
 * earlier one's second is shown one second later (and so on), never with a suffix.
 */
function namedByGmt(snaps: SnapshotRef[]): [string, SnapshotRef][] {
  let previous = -Infinity;
  return snaps.map((s) => {
    const second = Math.max(Math.floor(Date.parse(s.snapshot.time) / 1000), previous + 1);
    previous = second;
    return [gmtName(second * 1000), s];
  });
}

/** A name not in `taken`: `base`, else `base-<id prefix>` with as much of the id as it takes. */
function uniqueName(base: string, id: string, taken: Set<string>, suffixAt = base.length): string {
  if (!taken.has(base)) return base;
  for (let n = 8; n <= id.length; n += 4) {
    const name = `${base.slice(0, suffixAt)}-${id.slice(0, n)}${base.slice(suffixAt)}`;
    if (!taken.has(name)) return name;
  }
  throw new FsError(Errno.EIO, `no free name for a version of ${base}`);
}

const timeOf = (iso: string): Timestamp => {
  const ms = Date.parse(iso);
  return [Math.floor(ms / 1000), (ms % 1000) * 1e6];
};

const scopeOf = (snapshotId: string): Buffer => Buffer.from(snapshotId.slice(0, 16), 'hex');
const keyOf = (path: Buffer[]): string => Buffer.concat(path.flatMap((p) => [p, Buffer.from('/')])).toString('latin1');
const virtualIno = (path: Buffer[]): InoKey => ({ scope: createHash('sha1').update(keyOf(path), 'latin1').digest().subarray(0, 8), device: 0, inode: 0 });

/** Blocks of an entry captured before blocks were recorded: what a 4 KiB-block filesystem would hold. */
function blocksOf(e: Entry): number {
  if (e.blocks !== undefined) return e.blocks;
  return e.type === 'file' || e.type === 'dir' ? Math.ceil(e.size / 4096) * 8 : 0;
}

export function entryAttr(e: Entry, scope: Buffer): Attr {
  return {
    mode: modeBitsOf(e.type) | e.mode, uid: e.uid, gid: e.gid, size: e.size, nlink: Math.max(1, e.links),
    rdev: e.rdev ?? 0, blocks: blocksOf(e), atime: e.atime, mtime: e.mtime, ctime: e.ctime,
    ino: { scope, device: e.device, inode: e.inode },
  };
}

interface CachedTree {
  entries: Promise<Entry[]>;
  weight: number;
}

/** Where a path resolved inside one snapshot: the entry, the tree that lists it and its position there. */
interface Located {
  entry: Entry;
  tree: Buffer;
  index: number;
}

export class SnapshotView {
  private snaps: SnapshotRef[] = [];
  private loadedAt = -Infinity;
  private loading?: Promise<void>;
  private readonly trees: Lru<string, CachedTree>;
  private readonly chunks: ChunkCache;
  private readonly files = new Lru<string, OpenFile>(512);
  /** Virtual listings by path key: dropped when the snapshot list changes. */
  private readonly listings = new Map<string, Promise<ViewEntry[]>>();
  /** What a stored folder is, as far as history is concerned (see folderIdentity), by tree id. */
  private readonly identities = new Lru<string, Promise<string>>(20_000);
  private readonly unreadable = new Set<string>();
  private readonly listeners: (() => void)[] = [];
  private readonly now: () => number;
  private readonly started: Timestamp;

  constructor(private readonly source: ViewSource, private readonly opts: ViewOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.started = timeOf(new Date(this.now()).toISOString());
    this.trees = new Lru(opts.treeCacheEntries ?? 5_000, (t) => t.weight);
    this.chunks = new ChunkCache(source, opts.chunkCacheBytes ?? 24 * 1024 * 1024);
  }

  // ---- snapshots

  /** Calls `listener` whenever the snapshot list changes (virtual folders then list differently). */
  onSnapshotsChanged(listener: () => void): void {
    this.listeners.push(listener);
  }

  /** Reads the snapshot list again now; true when it changed. */
  async refresh(): Promise<boolean> {
    const before = this.snaps;
    this.loadedAt = -Infinity;
    await this.snapshots();
    return before !== this.snaps;
  }

  /** The snapshot list, read again when older than refreshMs (new backups appear without remounting). */
  async snapshots(): Promise<SnapshotRef[]> {
    if (this.now() - this.loadedAt > (this.opts.refreshMs ?? 2000)) {
      this.loading ??= this.source.snapshots().then((s) => {
        this.loadedAt = this.now();
        if (s.length === this.snaps.length && s.every((ref, i) => ref.id === this.snaps[i].id)) return;
        this.snaps = s;
        this.listings.clear();
        for (const listener of this.listeners) listener();
      }).finally(() => { this.loading = undefined; });
      await this.loading;
    }
    return this.snaps;
  }

  /**
   * The xattr namespaces any snapshot holds ("user", "security", "system", …), or
   * undefined when a snapshot does not say (it was made before snapshots recorded it).
   */
  async xattrNamespaces(): Promise<Set<string> | undefined> {
    const all = new Set<string>();
    for (const { snapshot } of await this.snapshots()) {
      if (!snapshot.xattrNamespaces) return undefined;
      for (const ns of snapshot.xattrNamespaces) all.add(ns);
    }
    return all;
  }

  // ---- listings

  /** The mount's root folder itself. */
  rootEntry(): ViewEntry {
    return this.virtualDir(Buffer.from('root'), [], this.started); // its name is never shown
  }

  /** Every child of a folder, sorted by name bytes. */
  async list(dir: DirRef): Promise<ViewEntry[]> {
    if (dir.kind === 'tree') return this.storedChildren(dir.tree, dir.scope);
    await this.snapshots();
    const key = keyOf(dir.path);
    let listing = this.listings.get(key);
    if (!listing) {
      listing = this.virtualChildren(dir.path).then(sortByName);
      listing.catch(() => this.listings.delete(key));
      this.listings.set(key, listing);
    }
    return listing;
  }

  private async storedChildren(tree: Buffer, scope: Buffer): Promise<ViewEntry[]> {
    return (await this.tree(tree)).map((e, index) => this.storedEntry(e, e.name, { tree, index, scope }));
  }

  private storedEntry(e: Entry, name: Buffer, at: FileRef): ViewEntry {
    const out: ViewEntry = { name, attr: entryAttr(e, at.scope), xattrs: e.xattrs ?? [] };
    if (e.type === 'dir') out.dir = { kind: 'tree', tree: e.subtree!, scope: at.scope };
    else if (e.type === 'file') {
      out.file = at;
      out.chunks = e.chunks;
    }
    else if (e.type === 'symlink') out.target = e.target;
    if (e.sparse && e.extents) out.extents = e.extents;
    return out;
  }

  private virtualDir(name: Buffer, path: Buffer[], time: Timestamp, subfolders = 0): ViewEntry {
    return {
      name, xattrs: [], dir: { kind: 'virtual', path }, volatile: true,
      attr: { ...virtualAttr(time, path), mode: modeBitsOf('dir') | 0o555, nlink: 2 + subfolders },
    };
  }

  /** A snapshot's root folder, shown under some name. */
  private snapshotRoot(name: string, ref: SnapshotRef): ViewEntry {
    const time = timeOf(ref.snapshot.time);
    const scope = scopeOf(ref.id);
    // nlink 1: the number of subfolders is not known without reading the tree (as on btrfs).
    return {
      name: Buffer.from(name), xattrs: [], dir: { kind: 'tree', tree: ref.snapshot.tree, scope },
      attr: { ...virtualAttr(time, []), mode: modeBitsOf('dir') | 0o555, nlink: 1, ino: { scope, device: 0, inode: 0 } },
    };
  }

  private newest(): Timestamp {
    return this.snaps.length ? timeOf(this.snaps.at(-1)!.snapshot.time) : this.started;
  }

  private async virtualChildren(path: Buffer[]): Promise<ViewEntry[]> {
    const snaps = this.snaps;
    const time = this.newest();
    const [top, group] = path;
    if (!top) {
      const hosts = groups(snaps, (s) => [s.snapshot.host]);
      const tags = groups(snaps, (s) => s.snapshot.tags);
      return [
        this.virtualDir(SNAPSHOTS, [SNAPSHOTS], time, snaps.length),
        this.virtualDir(HOSTS, [HOSTS], time, hosts.size),
        this.virtualDir(TAGS, [TAGS], time, tags.size),
        this.virtualDir(HISTORY, [HISTORY], time),
        ...namedByGmt(snaps).map(([name, ref]) => this.snapshotRoot(name, ref)),
      ];
    }
    if (top.equals(SNAPSHOTS) && path.length === 1) {
      const named = namedByTime(snaps);
      const out = named.map(([name, ref]) => this.snapshotRoot(name, ref));
      if (named.length) {
        const target = Buffer.from(named.at(-1)![0]);
        out.push({ name: LATEST, xattrs: [], target, attr: { ...virtualAttr(time, [SNAPSHOTS, LATEST]), mode: modeBitsOf('symlink') | 0o777, size: target.length, nlink: 1 } });
      }
      return out;
    }
    if ((top.equals(HOSTS) || top.equals(TAGS)) && path.length <= 2) {
      const grouped = top.equals(HOSTS) ? groups(snaps, (s) => [s.snapshot.host]) : groups(snaps, (s) => s.snapshot.tags);
      if (!group) return [...grouped.entries()].map(([g, members]) => this.virtualDir(Buffer.from(g), [top, Buffer.from(g)], time, members.length));
      const members = grouped.get(group.toString());
      if (!members) throw new FsError(Errno.ENOENT, `${keyOf(path)}: not found`);
      return namedByTime(members).map(([name, ref]) => this.snapshotRoot(name, ref));
    }
    if (top.equals(HISTORY)) return this.historyChildren(path.slice(1));
    throw new FsError(Errno.ENOENT, `${keyOf(path)}: not found`);
  }

  // ---- stored trees

  /** A stored folder's entries (cached by tree id: the same folder in many snapshots loads once). */
  private tree(id: Buffer): Promise<Entry[]> {
    const key = id.toString('hex');
    let cached = this.trees.get(key);
    if (!cached) {
      const holder: CachedTree = { entries: this.source.loadTree(id), weight: 1 };
      holder.entries.then((list) => {
        // Weighed by its entries once known (taken out first: the cache counts what it was given).
        if (this.trees.get(key) !== holder) return;
        this.trees.delete(key);
        holder.weight = Math.max(1, list.length);
        this.trees.set(key, holder);
      }, () => this.trees.delete(key)); // a failed load is tried again next time
      this.trees.set(key, (cached = holder));
    }
    return cached.entries;
  }

  // ---- history

  /** history/<parts>: children seen at that path in any snapshot, and its distinct versions. */
  private async historyChildren(parts: Buffer[]): Promise<ViewEntry[]> {
    const children = new Map<string, Buffer>();
    const versions: { ref: SnapshotRef; at: Located }[] = [];
    const seen = new Set<string>();
    for (const ref of this.snaps) {
      let at: Located | undefined;
      let identity: string;
      try {
        at = await this.resolveIn(ref, parts);
        if (!at) continue;
        identity = await this.versionIdentity(at.entry);
      } catch (e) {
        // One damaged snapshot must not hide the versions the others hold.
        if (!this.unreadable.has(ref.id)) {
          this.unreadable.add(ref.id);
          this.opts.onWarning?.(`history: snapshot ${ref.id.slice(0, 8)} is skipped: ${(e as Error).message}`);
        }
        continue;
      }
      if (!seen.has(identity)) {
        seen.add(identity);
        versions.push({ ref, at });
      }
      if (at.entry.type === 'dir') {
        for (const e of await this.tree(at.entry.subtree!)) children.set(e.name.toString('latin1'), e.name);
      }
    }
    const time = this.newest();
    const out = [...children.values()].map((name) => this.virtualDir(name, [HISTORY, ...parts, name], time));
    if (!parts.length) return out;
    // Versions never take a real child's name, nor each other's.
    const taken = new Set(children.keys());
    const last = parts.at(-1)!;
    for (const { ref, at } of versions) {
      const stamp = snapshotFolderName(ref.snapshot.time);
      const [base, suffixAt] = at.entry.type === 'dir' ? [Buffer.from(`@${stamp}`), undefined] : versionFileName(last, stamp);
      const name = Buffer.from(uniqueName(base.toString('latin1'), ref.id, taken, suffixAt), 'latin1');
      taken.add(name.toString('latin1'));
      out.push(this.storedEntry(at.entry, name, { tree: at.tree, index: at.index, scope: scopeOf(ref.id) }));
    }
    return out;
  }

  /** The entry at `parts` in a snapshot, with where it is listed (the root for no parts); undefined when not there. */
  private async resolveIn(ref: SnapshotRef, parts: Buffer[]): Promise<Located | undefined> {
    let dir: Entry = rootEntry(ref.snapshot.tree);
    let at: Located | undefined = { entry: dir, tree: ref.snapshot.tree, index: -1 };
    for (const part of parts) {
      if (dir.type !== 'dir') return undefined;
      const entries = await this.tree(dir.subtree!);
      const index = findByName(entries, part);
      if (index < 0) return undefined;
      at = { entry: entries[index], tree: dir.subtree!, index };
      dir = entries[index];
    }
    return at;
  }

  /** Two versions are the same when a user would not call them changed: atime, ctime and inode numbers do not count. */
  private async versionIdentity(e: Entry): Promise<string> {
    const own = [e.type, e.mode, e.uid, e.gid, e.size, e.mtime.join('.'), e.target?.toString('hex') ?? '',
      (e.chunks ?? []).map((c) => c.toString('hex')).join(''), (e.xattrs ?? []).map(([n, v]) => `${n}=${v.toString('hex')}`).join(',')].join(':');
    return e.type === 'dir' ? `${own}:${await this.folderIdentity(e.subtree!)}` : own;
  }

  /** A folder's identity all levels down (memoised by tree id). */
  private folderIdentity(tree: Buffer): Promise<string> {
    const key = tree.toString('hex');
    let identity = this.identities.get(key);
    if (!identity) {
      identity = this.tree(tree).then(async (entries) => {
        const hash = createHash('sha256');
        for (const e of entries) hash.update(e.name.toString('hex')).update('\0').update(await this.versionIdentity(e)).update('\n');
        return hash.digest('hex');
      });
      identity.catch(() => this.identities.delete(key));
      this.identities.set(key, identity);
    }
    return identity;
  }

  // ---- files

  /** Where the repository's pack files are, for reading data in C (undefined: not on a local disk). */
  directReads(): DirectReads | undefined {
    return this.source.directReads?.();
  }

  /** The stored entry of a file (its size and chunks). */
  async fileEntry(ref: FileRef): Promise<Entry> {
    const entry = (await this.tree(ref.tree))[ref.index];
    if (!entry) throw new FsError(Errno.EIO, `tree ${ref.tree.toString('hex')} has no entry ${ref.index}`);
    if (entry.type !== 'file') throw new FsError(Errno.EISDIR, `${entry.name.toString()} is not a regular file`);
    return entry;
  }

  /** A stored file, for reading. */
  async openFile(ref: FileRef): Promise<OpenFile> {
    const key = `${ref.tree.toString('hex')}:${ref.index}`;
    let file = this.files.get(key);
    if (!file) {
      file = new OpenFile(await this.fileEntry(ref), this.source, this.chunks);
      this.files.set(key, file);
    }
    return file;
  }

  // ---- by path (tests, and callers that think in paths)

  /** The entry at a path ("/snapshots/latest/…"); symlinks inside the path are not followed. */
  async lookup(path: string | Buffer): Promise<ViewEntry> {
    const parts = splitPath(path);
    let entry = this.rootEntry();
    for (const part of parts) {
      if (!entry.dir) throw new FsError(Errno.ENOTDIR, `${path.toString()}: not a folder on the way`);
      const found = (await this.list(entry.dir)).find((c) => c.name.equals(part));
      if (!found) throw new FsError(Errno.ENOENT, `${path.toString()}: not found`);
      entry = found;
    }
    return entry;
  }

  async readdir(path: string | Buffer): Promise<Buffer[]> {
    const entry = await this.lookup(path);
    if (!entry.dir) throw new FsError(Errno.ENOTDIR, `${path.toString()}: not a folder`);
    return (await this.list(entry.dir)).map((c) => c.name);
  }

  async getattr(path: string | Buffer): Promise<Attr> {
    return (await this.lookup(path)).attr;
  }

  async readlink(path: string | Buffer): Promise<Buffer> {
    const entry = await this.lookup(path);
    if (!entry.target) throw new FsError(Errno.EINVAL, `${path.toString()} is not a symlink`);
    return entry.target;
  }

  async open(path: string | Buffer): Promise<OpenFile> {
    const entry = await this.lookup(path);
    if (entry.dir) throw new FsError(Errno.EISDIR, `${path.toString()} is a folder`);
    if (!entry.file) throw new FsError(Errno.EINVAL, `${path.toString()} is not a regular file`);
    return this.openFile(entry.file);
  }
}

function virtualAttr(time: Timestamp, path: Buffer[]): Attr {
  return {
    mode: 0, uid: 0, gid: 0, size: 0, nlink: 1, rdev: 0, blocks: 0, atime: time, mtime: time, ctime: time, ino: virtualIno(path),
  };
}

function groups(snaps: SnapshotRef[], of: (s: SnapshotRef) => string[]): Map<string, SnapshotRef[]> {
  const out = new Map<string, SnapshotRef[]>();
  for (const s of snaps) {
    for (const g of of(s)) {
      if (!g || g.includes('/') || g.includes('\0') || g === '.' || g === '..' || Buffer.byteLength(g) > 255) continue;
      out.set(g, [...(out.get(g) ?? []), s]);
    }
  }
  return out;
}

const sortByName = (entries: ViewEntry[]): ViewEntry[] => entries.sort((a, b) => Buffer.compare(a.name, b.name));

function findByName(entries: Entry[], name: Buffer): number {
  let lo = 0;
  let hi = entries.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const c = Buffer.compare(entries[mid].name, name);
    if (c === 0) return mid;
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

function splitPath(path: string | Buffer): Buffer[] {
  const bytes = typeof path === 'string' ? Buffer.from(path) : path;
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= bytes.length; i++) {
    if (i === bytes.length || bytes[i] === 0x2f) {
      if (i > start) parts.push(bytes.subarray(start, i));
      start = i + 1;
    }
  }
  return parts;
}

/**
 * "report.pdf" in the snapshot of 2026-11-22 08:00 → "report.2026-11-22_08-00-00.pdf": it still opens
 * with its application. Returns the name and where a disambiguating suffix goes (before the extension).
 */
function versionFileName(name: Buffer, stamp: string): [Buffer, number] {
  const dot = name.lastIndexOf(0x2e);
  if (dot <= 0) return [Buffer.concat([name, Buffer.from(`.${stamp}`)]), name.length + stamp.length + 1];
  const base = Buffer.concat([name.subarray(0, dot), Buffer.from(`.${stamp}`)]);
  return [Buffer.concat([base, name.subarray(dot)]), base.length];
}

/**
 * A view source over a repository: the snapshot list, and whenever snapshots come or
 * go or a prune schedules deletions, a catch-up of the index with the packs written
 * and removed since (so reads move to the copies before the old packs are deleted).
 */
export function repositoryViewSource(repo: RepositoryLike, onWarning?: (m: string) => void): ViewSource {
  let known = new Set<string>();
  return {
    loadTree: (id) => repo.loadTree(id),
    loadBlob: (type, id) => repo.loadBlob(type, id),
    blobSize: (id) => repo.blobSize(id),
    directReads: () => repo.directReads?.(),
    async snapshots() {
      const list = await repo.listSnapshots(onWarning);
      const synced = await repo.refresh(onWarning);
      if (!synced && (list.length !== known.size || list.some((s) => !known.has(s.id)))) await repo.syncIndex(onWarning);
      known = new Set(list.map((s) => s.id));
      return list;
    },
  };
}

export interface RepositoryLike extends TreeReader, BlobReader {
  listSnapshots(onWarning?: (m: string) => void): Promise<SnapshotRef[]>;
  syncIndex(onWarning?: (m: string) => void): Promise<unknown>;
  /** Learns of scheduled deletions; true when they changed (the index was then synced). */
  refresh(onWarning?: (m: string) => void): Promise<boolean>;
  directReads?(): DirectReads | undefined;
}
