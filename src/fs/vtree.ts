/**
 * The browsable view of a repository as a pure virtual tree: path → node,
 * attributes, listings, reads at an offset. No FUSE here: the adapter in
 * mount.ts only maps calls and errno codes, and the tests drive this directly.
 *
 *   /snapshots/<YYYY-MM-DD_HH-MM-SS>/…   every snapshot (local time; same second: "-<id>")
 *   /snapshots/latest → newest
 *   /hosts/<host>/<time>/…, /tags/<tag>/<time>/…
 *   /@GMT-YYYY.MM.DD-HH.MM.SS/…          UTC names Samba's vfs_shadow_copy2 understands
 *   /history/<path>/…                    every distinct version of a file or folder at <path>
 */
import { createHash } from 'node:crypto';
import { modeBitsOf, rootEntry, type Entry } from '../store/format/tree.js';
import type { BlobReader, SnapshotRef, TreeReader } from '../store/roles.js';
import { Errno, FsError } from './errno.js';
import { shownName } from './names.js';

export interface Attr {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  ino: number;
  rdev: number;
  blocks: number;
  mtime: number;
  atime: number;
  ctime: number;
}

/** What the view needs of a repository: trees, blobs, and the current snapshot list. */
export interface ViewSource extends TreeReader, BlobReader {
  /** The snapshots now (oldest first); called again when the view refreshes. */
  snapshots(): Promise<SnapshotRef[]>;
}

export interface ViewOptions {
  /** How long a snapshot list is trusted before it is read again (ms). */
  refreshMs?: number;
  /** Decoded trees kept in memory. */
  treeCacheSize?: number;
  /** Bytes of file chunks kept in memory. */
  chunkCacheBytes?: number;
  now?: () => number;
}


/** A node of the view: a stored entry, or a virtual folder or link made by the view. */
type Node =
  | { kind: 'entry'; entry: Entry; scope: string }
  | { kind: 'dir'; list: () => Promise<Map<string, Node>>; key: string }
  | { kind: 'link'; target: string; key: string };

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/** "2026-11-22_08-00-00" in local time. */
export function snapshotFolderName(time: string): string {
  const d = new Date(time);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}_${pad(d.getHours())}-${pad(d.getMinutes())}-${pad(d.getSeconds())}`;
}

/** "@GMT-2026.11.22-08.00.00" in UTC, as Samba's shadow_copy2 expects. */
export function gmtName(time: string): string {
  const d = new Date(time);
  return `@GMT-${d.getUTCFullYear()}.${pad(d.getUTCMonth() + 1)}.${pad(d.getUTCDate())}-${pad(d.getUTCHours())}.${pad(d.getUTCMinutes())}.${pad(d.getUTCSeconds())}`;
}

/** Folder names for snapshots: by time, with a short id when two fall in the same second. */
function namedSnapshots(snaps: SnapshotRef[], nameOf: (time: string) => string): Map<string, SnapshotRef> {
  const counts = new Map<string, number>();
  for (const s of snaps) counts.set(nameOf(s.snapshot.time), (counts.get(nameOf(s.snapshot.time)) ?? 0) + 1);
  const named = new Map<string, SnapshotRef>();
  for (const s of snaps) {
    const base = nameOf(s.snapshot.time);
    named.set(counts.get(base)! > 1 ? `${base}-${s.id.slice(0, 8)}` : base, s);
  }
  return named;
}

/** 32-bit inode numbers (the binding's width), stable for the life of the mount. */
class Inodes {
  private readonly linked = new Map<string, number>();
  private next = 2;
  of(key: string, sharedByHardLinks: boolean): number {
    if (sharedByHardLinks) {
      // Hard links must share a number and tools compare them: numbered exactly, not hashed.
      let ino = this.linked.get(key);
      if (ino === undefined) this.linked.set(key, (ino = this.next++));
      return ino;
    }
    return (createHash('sha1').update(key).digest().readUInt32LE(0) | 0x80000000) >>> 0;
  }
}

/** A bounded map that forgets the least recently used entries. */
class Lru<K, V> {
  private readonly map = new Map<K, V>();
  private weight = 0;
  constructor(private readonly limit: number, private readonly weigh: (v: V) => number = () => 1) {}
  get(k: K): V | undefined {
    const v = this.map.get(k);
    if (v !== undefined) {
      this.map.delete(k);
      this.map.set(k, v);
    }
    return v;
  }
  clear(): void {
    this.map.clear();
    this.weight = 0;
  }
  delete(k: K): void {
    const old = this.map.get(k);
    if (old === undefined) return;
    this.weight -= this.weigh(old);
    this.map.delete(k);
  }
  set(k: K, v: V): void {
    const old = this.map.get(k);
    if (old !== undefined) this.weight -= this.weigh(old);
    this.map.delete(k);
    this.map.set(k, v);
    this.weight += this.weigh(v);
    for (const [key, value] of this.map) {
      if (this.weight <= this.limit || this.map.size <= 1) break;
      this.map.delete(key);
      this.weight -= this.weigh(value);
    }
  }
}

export class SnapshotView {
  private snaps: SnapshotRef[] = [];
  private loadedAt = -Infinity;
  private loading?: Promise<void>;
  private readonly trees: Lru<string, Promise<Map<string, Entry>>>;
  private readonly chunks: Lru<string, CachedChunk>;
  private readonly inodes = new Inodes();
  private readonly rootNode: Node;
  /** Resolved nodes by path, and virtual folder listings by key: both dropped when the snapshot list changes. */
  private readonly paths = new Lru<string, Node>(200_000);
  private readonly listings = new Map<string, Promise<Map<string, Node>>>();
  private readonly attrs = new WeakMap<Node, Attr>();
  private readonly started: number;
  private readonly now: () => number;

  constructor(private readonly source: ViewSource, private readonly opts: ViewOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.started = this.now();
    this.trees = new Lru(opts.treeCacheSize ?? 2048);
    this.rootNode = this.root();
    this.chunks = new Lru(opts.chunkCacheBytes ?? 24 * 1024 * 1024, (c) => c.size);
  }

  // ---- snapshots

  /** The snapshot list, read again when older than refreshMs (new backups appear without remounting). */
  private async snapshots(): Promise<SnapshotRef[]> {
    if (this.now() - this.loadedAt > (this.opts.refreshMs ?? 2000)) {
      this.loading ??= this.source.snapshots().then((s) => {
        if (s.length !== this.snaps.length || s.some((ref, i) => ref.id !== this.snaps[i].id)) {
          this.paths.clear();
          this.listings.clear();
        }
        this.snaps = s;
        this.loadedAt = this.now();
      }).finally(() => { this.loading = undefined; });
      await this.loading;
    }
    return this.snaps;
  }

  private snapshotDir(ref: SnapshotRef): Node {
    return { kind: 'dir', key: `snap:${ref.id}`, list: () => this.children(ref.snapshot.tree, ref.id) };
  }

  private byTime(snaps: SnapshotRef[]): Map<string, Node> {
    const out = new Map<string, Node>();
    for (const [name, ref] of namedSnapshots(snaps, snapshotFolderName)) out.set(name, this.snapshotDir(ref));
    return out;
  }

  private root(): Node {
    return {
      kind: 'dir', key: 'root', list: async () => {
        const snaps = await this.snapshots();
        const top = new Map<string, Node>([
          ['snapshots', { kind: 'dir', key: 'snapshots', list: async () => {
            const all = await this.snapshots();
            const byTime = this.byTime(all);
            if (all.length) {
              const newest = [...byTime.keys()].at(-1)!;
              byTime.set('latest', { kind: 'link', key: 'latest', target: newest });
            }
            return byTime;
          } }],
          ['hosts', this.grouped('hosts', (s) => [s.snapshot.host])],
          ['tags', this.grouped('tags', (s) => s.snapshot.tags)],
          ['history', { kind: 'dir', key: 'history', list: () => this.historyChildren([]) }],
        ]);
        for (const [name, ref] of namedSnapshots(snaps, gmtName)) top.set(name, this.snapshotDir(ref));
        return top;
      },
    };
  }

  private grouped(key: string, groupsOf: (s: SnapshotRef) => string[]): Node {
    return {
      kind: 'dir', key, list: async () => {
        const groups = new Map<string, SnapshotRef[]>();
        for (const s of await this.snapshots()) {
          for (const g of groupsOf(s)) {
            if (!g || g.includes('/') || g === '.' || g === '..') continue;
            groups.set(g, [...(groups.get(g) ?? []), s]);
          }
        }
        return new Map([...groups].map(([g, snaps]) => [g, { kind: 'dir', key: `${key}:${g}`, list: async () => this.byTime(snaps) } as Node]));
      },
    };
  }

  // ---- stored trees

  /** A stored folder's entries by shown name (cached by tree id: the same folder in many snapshots loads once). */
  private tree(id: Buffer): Promise<Map<string, Entry>> {
    const key = id.toString('hex');
    let entries = this.trees.get(key);
    if (!entries) {
      entries = this.source.loadTree(id).then((list) => {
        const map = new Map<string, Entry>();
        for (const e of list) {
          let name = shownName(e.name);
          while (map.has(name)) name += '~'; // two byte names shown alike
          map.set(name, e);
        }
        return map;
      });
      entries.catch(() => this.trees.delete(key)); // a failed load is tried again next time
      this.trees.set(key, entries);
    }
    return entries;
  }

  private async children(tree: Buffer, scope: string): Promise<Map<string, Node>> {
    const out = new Map<string, Node>();
    for (const [name, entry] of await this.tree(tree)) out.set(name, { kind: 'entry', entry, scope });
    return out;
  }

  // ---- history

  /** history/<parts>: children seen at that path in any snapshot, and its distinct versions. */
  private async historyChildren(parts: string[]): Promise<Map<string, Node>> {
    const out = new Map<string, Node>();
    const versions = new Map<string, { ref: SnapshotRef; entry: Entry }>();
    for (const ref of await this.snapshots()) {
      const entry = await this.resolveIn(ref, parts);
      if (!entry) continue;
      const identity = versionIdentity(entry);
      if (!versions.has(identity)) versions.set(identity, { ref, entry });
      if (entry.type === 'dir') {
        for (const name of (await this.tree(entry.subtree!)).keys()) {
          if (!out.has(name)) out.set(name, { kind: 'dir', key: `history:${[...parts, name].join('/')}`, list: () => this.historyChildren([...parts, name]) });
        }
      }
    }
    if (parts.length) {
      for (const { ref, entry } of versions.values()) {
        const stamp = snapshotFolderName(ref.snapshot.time);
        const name = entry.type === 'dir' ? `@${stamp}` : versionFileName(parts.at(-1)!, stamp);
        out.set(name, { kind: 'entry', entry, scope: ref.id });
      }
    }
    return out;
  }

  /** The entry at `parts` in a snapshot (the root itself for no parts), or undefined. */
  private async resolveIn(ref: SnapshotRef, parts: string[]): Promise<Entry | undefined> {
    let entry: Entry | undefined = rootEntry(ref.snapshot.tree);
    for (const part of parts) {
      if (entry?.type !== 'dir') return undefined;
      entry = (await this.tree(entry.subtree!)).get(part);
    }
    return entry;
  }

  // ---- lookups

  /**
   * The node at `path`. Resolved nodes are cached by path (most FUSE calls
   * name a path whose parent was just resolved); the cache is dropped when the
   * snapshot list changes, since virtual folders depend on it.
   */
  private async lookup(path: string): Promise<Node> {
    await this.snapshots();
    if (path === '/' || path === '') return this.rootNode;
    const cached = this.paths.get(path);
    if (cached) return cached;
    const slash = path.lastIndexOf('/');
    const parent = await this.lookup(slash <= 0 ? '/' : path.slice(0, slash));
    if (parent.kind === 'link' || (parent.kind === 'entry' && parent.entry.type !== 'dir')) {
      throw new FsError(Errno.ENOENT, `${path}: not found`);
    }
    const node = await this.child(parent, path.slice(slash + 1));
    if (!node) throw new FsError(Errno.ENOENT, `${path}: not found`);
    this.paths.set(path, node);
    return node;
  }

  private async child(parent: Node, name: string): Promise<Node | undefined> {
    if (parent.kind === 'entry') {
      const entry = (await this.tree(parent.entry.subtree!)).get(name);
      return entry && { kind: 'entry', entry, scope: parent.scope };
    }
    return (await this.listNode(parent)).get(name);
  }

  /** A folder's children; a virtual folder's listing is kept until the snapshot list changes. */
  private async listNode(node: Node): Promise<Map<string, Node>> {
    if (node.kind === 'dir') {
      let listing = this.listings.get(node.key);
      if (!listing) {
        listing = node.list();
        listing.catch(() => this.listings.delete(node.key));
        this.listings.set(node.key, listing);
      }
      return listing;
    }
    if (node.kind === 'entry' && node.entry.type === 'dir') return this.children(node.entry.subtree!, node.scope);
    throw new FsError(Errno.ENOTDIR, 'not a folder');
  }

  async readdir(path: string): Promise<string[]> {
    const node = await this.lookup(path);
    if (node.kind === 'entry' && node.entry.type === 'dir') return [...(await this.tree(node.entry.subtree!)).keys()];
    return [...(await this.listNode(node)).keys()];
  }

  async getattr(path: string): Promise<Attr> {
    const node = await this.lookup(path);
    let attr = this.attrs.get(node);
    if (!attr) this.attrs.set(node, (attr = this.attrOf(node)));
    return attr;
  }

  private attrOf(node: Node): Attr {
    if (node.kind === 'entry') return this.entryAttr(node.entry, node.scope);
    const time = node.kind === 'link' ? this.loadedAt : this.started;
    const isDir = node.kind === 'dir';
    return {
      mode: isDir ? modeBitsOf('dir') | 0o555 : modeBitsOf('symlink') | 0o777, uid: 0, gid: 0,
      size: isDir ? 0 : Buffer.byteLength(node.target), nlink: isDir ? 2 : 1,
      ino: this.inodes.of(node.key, false), rdev: 0, blocks: 0, mtime: time, atime: time, ctime: time,
    };
  }

  private entryAttr(e: Entry, scope: string): Attr {
    const ms = (t: readonly [number, number]): number => t[0] * 1000 + Math.floor(t[1] / 1e6);
    return {
      mode: modeBitsOf(e.type) | e.mode, uid: e.uid, gid: e.gid, size: e.size,
      nlink: e.type === 'dir' ? 2 : Math.max(1, e.links),
      ino: this.inodes.of(`${scope}:${e.device}:${e.inode}:${e.type === 'dir' ? e.subtree!.toString('hex') : ''}`, e.type !== 'dir' && e.links > 1),
      rdev: e.rdev ?? 0, blocks: Math.ceil(e.size / 512), mtime: ms(e.mtime), atime: ms(e.atime), ctime: ms(e.ctime),
    };
  }

  async readlink(path: string): Promise<string> {
    const node = await this.lookup(path);
    if (node.kind === 'link') return node.target;
    if (node.kind === 'entry' && node.entry.type === 'symlink') return node.entry.target!.toString('utf8');
    throw new FsError(Errno.EINVAL, `${path} is not a symlink`);
  }

  async xattrs(path: string): Promise<[string, Buffer][]> {
    const node = await this.lookup(path);
    return node.kind === 'entry' ? node.entry.xattrs ?? [] : [];
  }

  /** The stored file at `path`, for reading. */
  async openFile(path: string): Promise<OpenFile> {
    const node = await this.lookup(path);
    if (node.kind !== 'entry' || node.entry.type === 'dir') throw new FsError(Errno.EISDIR, `${path} is a folder`);
    if (node.entry.type !== 'file') throw new FsError(Errno.EINVAL, `${path} is not a regular file`);
    return new OpenFile(node.entry, path, this.source, this.chunks);
  }
}

/** Two versions are the same when their content and metadata are. */
function versionIdentity(e: Entry): string {
  if (e.type === 'dir') return `d:${e.subtree!.toString('hex')}`;
  const chunks = (e.chunks ?? []).map((c) => c.toString('hex')).join('');
  return `${e.type}:${e.size}:${e.mode}:${e.uid}:${e.gid}:${e.mtime.join('.')}:${chunks}:${e.target?.toString('hex') ?? ''}`;
}

/** "report.pdf" in the snapshot of 2026-11-22 08:00 → "report.2026-11-22_08-00-00.pdf": it still opens with its application. */
function versionFileName(name: string, stamp: string): string {
  const dot = name.lastIndexOf('.');
  return dot > 0 ? `${name.slice(0, dot)}.${stamp}${name.slice(dot)}` : `${name}.${stamp}`;
}

interface CachedChunk {
  size: number;
  data: Promise<Buffer>;
}

/** An open file: offset → chunk by binary search, chunks from a bounded cache, the next one fetched ahead. */
export class OpenFile {
  private offsets?: number[];
  constructor(readonly entry: Entry, private readonly path: string, private readonly source: BlobReader, private readonly cache: Lru<string, CachedChunk>) {}

  /** Start offset of every chunk, plus the end. */
  private chunkOffsets(): number[] {
    if (!this.offsets) {
      const offsets = [0];
      for (const id of this.entry.chunks!) {
        const size = this.source.blobSize(id);
        if (size === undefined) throw new FsError(Errno.EIO, `${this.path}: chunk ${id.toString('hex')} is missing from the repository`);
        offsets.push(offsets.at(-1)! + size);
      }
      if (offsets.at(-1) !== this.entry.size) {
        throw new FsError(Errno.EIO, `${this.path}: its chunks hold ${offsets.at(-1)} bytes but the file has ${this.entry.size}`);
      }
      this.offsets = offsets;
    }
    return this.offsets;
  }

  private chunk(i: number): Promise<Buffer> {
    const id = this.entry.chunks![i];
    const key = id.toString('hex');
    let cached = this.cache.get(key);
    if (!cached) {
      cached = { size: this.offsets![i + 1] - this.offsets![i], data: this.source.loadBlob('data', id) };
      cached.data.catch(() => this.cache.delete(key)); // damage is reported to each reader, not cached
      this.cache.set(key, cached);
    }
    return cached.data;
  }

  /** Copies up to `length` bytes at `position` into `into`; returns how many. */
  async read(into: Buffer, length: number, position: number): Promise<number> {
    const offsets = this.chunkOffsets();
    const size = this.entry.size;
    if (position >= size) return 0;
    const end = Math.min(size, position + length);
    let lo = 0;
    let hi = offsets.length - 2;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (offsets[mid] <= position) lo = mid;
      else hi = mid - 1;
    }
    let copied = 0;
    for (let i = lo; offsets[i] < end; i++) {
      const data = await this.chunk(i);
      const from = Math.max(position, offsets[i]) - offsets[i];
      const to = Math.min(end, offsets[i + 1]) - offsets[i];
      data.copy(into, copied, from, to);
      copied += to - from;
      // Sequential readers get the next chunk fetched while they consume this one.
      if (offsets[i + 1] >= end && i + 1 < offsets.length - 1) void this.chunk(i + 1).catch(() => {});
    }
    return copied;
  }
}

/**
 * A view source over a repository: the snapshot list, and on every new
 * snapshot a catch-up of the index from the packs written since.
 */
export function repositoryViewSource(repo: RepositoryLike, onWarning?: (m: string) => void): ViewSource {
  let known = new Set<string>();
  return {
    loadTree: (id) => repo.loadTree(id),
    loadBlob: (type, id) => repo.loadBlob(type, id),
    blobSize: (id) => repo.blobSize(id),
    async snapshots() {
      const list = await repo.listSnapshots(onWarning);
      if (list.some((s) => !known.has(s.id))) await repo.syncIndex(onWarning);
      known = new Set(list.map((s) => s.id));
      return list;
    },
  };
}

export interface RepositoryLike extends TreeReader, BlobReader {
  listSnapshots(onWarning?: (m: string) => void): Promise<SnapshotRef[]>;
  syncIndex(onWarning?: (m: string) => void): Promise<unknown>;
}
