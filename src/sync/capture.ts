/**
 * Capture: one incremental snapshot of one or more source paths.
 *
 * walk → compare each file with the parent snapshot's entry (size, mtime,
 * ctime, inode): unchanged files reuse their chunk ids without being read →
 * changed files are read, cut by the native chunker, hashed, and stored through
 * the BlobWriter (compress + seal + pack; a small file is read, hashed and
 * sealed in one native job) → each directory becomes a tree, an unchanged
 * directory yields the same tree id and costs nothing → after a flush makes
 * every pack durable, the snapshot record is saved. A folder is compared with
 * the parent's folder at the same path if it is the same folder, else with the
 * tree it had when last captured (FolderMemory): renames and moves read nothing.
 *
 * Files are read a few at a time (bounded fastq queues; a Room bounds what the
 * walk has handed over, at a constant cost per file), large ones through a
 * reused window, so memory does not grow with the size of the share.
 */
import { constants, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fastq from 'fastq';
import { Minimatch } from 'minimatch';
import { native } from '../native.js';
import { makeCutter, type CutFunction } from '../store/chunker.js';
import { errors, isStrataError, StrataError } from '../store/errors.js';
import type { Snapshot, SnapshotSummary } from '../store/format/records.js';
import { TreeBuilder, TreeIndex, type Entry, type Tally } from '../store/format/tree.js';
import type { BlobReader, BlobWriter, FolderMemory, FolderSeen, SnapshotRef, SnapshotWriter } from '../store/roles.js';
import {
  displayPath, entryFromStat, isDirectory, isRegularFile, joinPath, readSmallFile, readXattrs, sameContentStat, scanDir, statFromNode,
  type FileStat, type Listing,
} from './local-fs.js';
import { Pending, Room } from './room.js';

export interface CaptureOptions {
  paths: string[];
  host?: string;
  tags?: string[];
  /** Glob patterns: without "/" they match a name anywhere, with "/" the whole path. */
  excludes?: string[];
  oneFileSystem?: boolean;
  parent?: SnapshotRef;
  onProgress?: (p: CaptureProgress) => void;
  /** Told about every file that could not be read (it is also in the summary). */
  onError?: (path: string, message: string) => void;
  /** Told about what does not keep a file from being captured (an earlier tree that cannot be read: the folder is read again). */
  onWarning?: (message: string) => void;
  signal?: AbortSignal;
  now?: () => Date;
  /**
   * From a change journal: true for a folder in which nothing changed, all levels
   * down, since the parent snapshot. Such a folder is not read: its subtree is
   * reused from the parent. Without it every folder is walked.
   */
  isUnchanged?: (folder: string) => boolean;
  /** Save no snapshot when nothing differs from the parent: the parent is returned instead. */
  onlyIfChanged?: boolean;
}

export interface CaptureProgress {
  files: number;
  bytes: number;
  filesRead: number;
  bytesRead: number;
  /** Estimated totals (from the parent snapshot or a scan), if known. */
  totalBytes?: number;
  current?: string;
}

export type CaptureRepo = BlobWriter & Pick<BlobReader, 'loadBlob'> & SnapshotWriter & FolderMemory;

/** Files read at once; small ones mostly wait on the disk, so several overlap. */
const FILE_CONCURRENCY = 8;
/** Folders listed at once: listing is latency-bound (one round trip per step), so many overlap. */
const SCAN_CONCURRENCY = 16;
/** Files handed to the file queues and not yet done before the walk pauses: bounds memory on huge shares. */
const FILE_BACKLOG = 256;
/** Subfolders of one folder captured at once. */
const SUBDIR_CONCURRENCY = 4;
/** Files larger than this stream through a window; smaller ones are read whole. */
const WHOLE_FILE_LIMIT = 1024 * 1024;
/** Large files streamed at once (each holds a window of maxChunk + READ_SIZE bytes). */
const LARGE_FILE_CONCURRENCY = 2;
const READ_SIZE = 4 * 1024 * 1024;
/** Attempts to read a file that keeps changing before it is stored marked inconsistent. */
const READ_ATTEMPTS = 3;

interface Counters extends SnapshotSummary {}

export async function capture(repo: CaptureRepo, opts: CaptureOptions): Promise<SnapshotRef> {
  const started = Date.now();
  const sources = opts.paths.map((p) => path.resolve(p));
  const summary: Counters = {
    files: 0, dirs: 0, others: 0, bytes: 0, filesRead: 0, bytesRead: 0, blobsAdded: 0, bytesAdded: 0, errors: [], seconds: 0,
  };
  for (const source of sources) {
    await fs.lstat(source).catch((e: NodeJS.ErrnoException) => {
      throw errors.notFound(`the source ${source} cannot be backed up: ${e.code === 'ENOENT' ? 'it does not exist' : e.message}`);
    });
  }
  const walker = new Walker(repo, opts, summary);
  const root = await walker.captureRoots(sources, opts.parent?.snapshot.tree);
  await repo.flush();
  await repo.rememberFolders(walker.foldersSeen);
  if (opts.onlyIfChanged && opts.parent && root.equals(opts.parent.snapshot.tree)) return opts.parent;
  const snapshot: Snapshot = {
    time: (opts.now?.() ?? new Date()).toISOString(),
    host: opts.host ?? os.hostname(),
    user: os.userInfo().username,
    paths: sources,
    tags: opts.tags ?? [],
    excludes: opts.excludes ?? [],
    parent: opts.parent?.id,
    tree: root,
    summary: { ...summary, seconds: (Date.now() - started) / 1000 },
  };
  if (walker.xattrNamespaces) snapshot.xattrNamespaces = [...walker.xattrNamespaces].sort();
  return { id: await repo.saveSnapshot(snapshot), snapshot };
}

/** A listed folder entry: its path, its name and its lstat. */
type Child = [path: Buffer, name: Buffer, st: FileStat];
/** A listed folder: its entries and the same folder's entries in the parent snapshot. */
interface Scan { listing: Listing; previous: TreeIndex }

class Walker {
  private readonly cut: CutFunction;
  private readonly excludes: Minimatch[];
  private readonly smallFiles = fastq.promise((job: () => Promise<void>) => job(), FILE_CONCURRENCY);
  private readonly largeFiles = fastq.promise((job: () => Promise<void>) => job(), LARGE_FILE_CONCURRENCY);
  /** Backpressure: a place for every file handed to the file queues, so the walk never runs far ahead of reading. */
  private readonly fileRoom = new Room(FILE_BACKLOG);
  private readonly scans = fastq.promise((job: () => Promise<Scan | undefined>) => job(), SCAN_CONCURRENCY);
  private readonly windows: Buffer[] = [];
  private readonly smallBuffers: Buffer[] = [];
  /** Hard-linked files read (or being read) in this snapshot, by device:inode: the entry as read, and how many names took it. */
  private readonly hardLinks = new Map<string, { names: number; content: Promise<Entry | undefined> }>();
  private rootDevice = 0;
  /** Every folder walked, with its new tree: remembered once the trees are durable. */
  readonly foldersSeen: FolderSeen[] = [];
  /** Namespaces of every xattr captured; undefined once a reused subtree's cannot be known. */
  xattrNamespaces: Set<string> | undefined = new Set();
  /**
   * The first repository failure (disk full, storage error, interruption): it ends the backup.
   * Reads still on their way then fail too (the repository closes under them): they are not
   * the files' fault and are not reported, so the failure is said once.
   */
  private stopped = false;

  constructor(private readonly repo: CaptureRepo, private readonly opts: CaptureOptions, private readonly summary: Counters) {
    this.cut = makeCutter(repo.chunkerParams);
    this.excludes = (opts.excludes ?? []).map((p) => new Minimatch(p, { dot: true, matchBase: !p.includes('/') }));
  }

  /**
   * The snapshot's root tree holds each source at its full path: /srv/share
   * becomes srv/share, with srv's own metadata, so sources never collide.
   */
  async captureRoots(sources: string[], parentRoot: Buffer | undefined): Promise<Buffer> {
    interface Node { children: Map<string, Node>; source?: string }
    const top: Node = { children: new Map() };
    for (const source of sources) {
      let node = top;
      for (const part of source.split('/').filter(Boolean)) {
        if (!node.children.has(part)) node.children.set(part, { children: new Map() });
        node = node.children.get(part)!;
      }
      node.source = source;
    }
    const build = async (node: Node, dirPath: string, parentTree: Buffer | undefined): Promise<[Buffer, Tally]> => {
      const parentEntries = await this.parentIndex(parentTree, Buffer.from(dirPath));
      const tree = new TreeBuilder();
      for (const [part, child] of node.children) {
        const childPath = path.join(dirPath, part);
        const name = Buffer.from(part);
        const st = await this.lstat(Buffer.from(childPath));
        if (!st) continue;
        const previous = parentEntries.get(name);
        if (child.source !== undefined) {
          this.rootDevice = st.dev;
          const entry = await this.captureEntry(Buffer.from(childPath), name, st, previous, true);
          if (entry) tree.add(entry);
        } else {
          const entry = entryFromStat(name, st)!;
          if (entry.type !== 'dir') {
            this.error(childPath, 'is not a directory (it is on the way to a source path)');
            continue;
          }
          entry.xattrs = readXattrs(Buffer.from(childPath));
          this.noteXattrs(entry);
          entry.atime = entry.mtime;
          [entry.subtree, entry.tally] = await build(child, childPath, previous?.type === 'dir' ? previous.subtree : undefined);
          tree.add(entry);
        }
      }
      return this.saveTree(tree);
    };
    if (sources.length === 0) throw errors.usage('nothing to back up: give at least one path');
    return (await build(top, '/', parentRoot))[0];
  }

  /** Saves a folder's tree; returns its id and what it holds all levels down. */
  private async saveTree(tree: TreeBuilder): Promise<[Buffer, Tally]> {
    const { id, added } = await this.repo.saveTree(tree);
    this.countAdded(added);
    return [id, tree.tally];
  }

  private noteXattrs(entry: Entry): void {
    for (const [name] of entry.xattrs ?? []) this.xattrNamespaces?.add(name.slice(0, Math.max(0, name.indexOf('.'))) || name);
  }

  /** A subtree reused unread holds what the parent snapshot's namespaces say (unknown if it does not say). */
  private reuseNamespaces(): void {
    const parent = this.opts.parent?.snapshot.xattrNamespaces;
    if (!parent) this.xattrNamespaces = undefined;
    else for (const ns of parent) this.xattrNamespaces?.add(ns);
  }

  /** The parent snapshot's folder, looked up by name. */
  /** The tree a folder is compared with; one that cannot be read (damaged, or pruned from under a hint) means reading the folder's files again. */
  private async parentIndex(tree: Buffer | undefined, p: Buffer): Promise<TreeIndex> {
    if (!tree) return TreeIndex.empty;
    const what = `tree ${tree.toString('hex')}`;
    try {
      return TreeIndex.decode(await this.repo.loadBlob('tree', tree), what);
    } catch (e) {
      if (!isStrataError(e, 'CORRUPT')) throw e;
      this.opts.onWarning?.(`${displayPath(p)}: its earlier ${what} cannot be read (${(e as Error).message}): its files are read again`);
      return TreeIndex.empty;
    }
  }

  private async lstat(p: Buffer): Promise<FileStat | undefined> {
    try {
      return statFromNode(await fs.lstat(p, { bigint: true }));
    } catch (e) {
      this.error(displayPath(p), (e as Error).message);
      return undefined;
    }
  }

  private error(p: string, message: string): void {
    if (this.stopped) return;
    this.summary.errors.push({ path: p, message });
    this.opts.onError?.(p, message);
  }

  private excluded(p: Buffer): boolean {
    if (this.excludes.length === 0) return false;
    const text = displayPath(p);
    return this.excludes.some((m) => m.match(text));
  }

  private checkAborted(): void {
    if (this.opts.signal?.aborted) throw errors.interrupted('backup interrupted; nothing already stored is lost');
  }

  /**
   * Captures one entry of any type; undefined when it cannot be captured (recorded as an error).
   * `atPath`: `previous` is the parent snapshot's entry at this very path, which is what a
   * change journal speaks of; below a folder compared with a remembered tree it is not.
   */
  private async captureEntry(p: Buffer, name: Buffer, st: FileStat, previous: Entry | undefined, atPath: boolean): Promise<Entry | undefined> {
    const entry = entryFromStat(name, st);
    if (!entry) {
      this.error(displayPath(p), 'has an unknown file type');
      return undefined;
    }
    try {
      if (st.xattrBytes !== 0) entry.xattrs = readXattrs(p); // the listing knows most entries have none
    } catch (e) {
      this.error(displayPath(p), `extended attributes: ${(e as Error).message}`);
    }
    if (entry.xattrs?.length === 0) delete entry.xattrs;
    this.noteXattrs(entry);
    switch (entry.type) {
      case 'dir': {
        // Listing a folder updates its access time, so a recorded one would change every
        // unchanged folder's tree: folders keep their mtime as atime.
        entry.atime = entry.mtime;
        this.summary.dirs++;
        if (atPath && previous?.type === 'dir' && previous.tally && this.opts.isUnchanged?.(displayPath(p))) {
          entry.subtree = previous.subtree;
          entry.tally = previous.tally;
          this.reuseNamespaces();
          this.summary.files += previous.tally.files;
          this.summary.dirs += previous.tally.dirs;
          this.summary.others += previous.tally.others;
          this.summary.bytes += previous.tally.bytes;
          return entry;
        }
        const compared = this.previousTree(entry, previous);
        [entry.subtree, entry.tally] = await this.captureDir(p, entry, compared.tree, atPath && !compared.remembered);
        // Remembered only where that changes what is remembered: a no-change backup writes no hint.
        if (!this.repo.lastTreeOf(entry.device, entry.inode)?.equals(entry.subtree)) {
          this.foldersSeen.push({ device: entry.device, inode: entry.inode, tree: entry.subtree });
        }
        return entry;
      }
      case 'file':
        return (await this.captureFile(p, entry, st, previous)) ? entry : undefined;
      case 'symlink':
        this.summary.others++;
        entry.atime = entry.mtime; // reading a link updates its access time, as listing does a folder's
        try {
          entry.target = await fs.readlink(p, { encoding: 'buffer' });
        } catch (e) {
          this.error(displayPath(p), (e as Error).message);
          return undefined;
        }
        return entry;
      default:
        this.summary.others++;
        return entry;
    }
  }

  /**
   * The tree to compare a folder with: the parent snapshot's at the same path if it is the
   * same folder (same inode), else the tree this folder had when last captured wherever it
   * was (renamed or moved: its files are then not read again), else the one at the same path.
   */
  private previousTree(dir: Entry, previous: Entry | undefined): { tree: Buffer | undefined; remembered: boolean } {
    const samePath = previous?.type === 'dir' ? previous.subtree : undefined;
    if (samePath && previous!.inode === dir.inode && previous!.device === dir.device) return { tree: samePath, remembered: false };
    const remembered = this.repo.lastTreeOf(dir.device, dir.inode);
    return remembered ? { tree: remembered, remembered: true } : { tree: samePath, remembered: false };
  }

  private async captureDir(p: Buffer, dir: Entry, parentTree: Buffer | undefined, atPath: boolean): Promise<[Buffer, Tally]> {
    this.checkAborted();
    const tree = new TreeBuilder();
    if (this.opts.oneFileSystem && dir.device !== this.rootDevice) return this.saveTree(tree);
    await this.fileRoom.turn(); // no new listing while the file queues are full
    const scanned = await this.scans.push(() => this.scanDir(p, parentTree));
    if (!scanned) return this.saveTree(tree);
    const add = (entry: Entry | undefined): void => { if (entry) tree.add(entry); };
    // Subfolders a few at a time (their own scans are bounded globally), files through the file queues.
    const subdirs = fastq.promise(async ([child, name, st]: Child) => add(await this.captureEntry(child, name, st, this.previousOf(scanned, name, child), atPath)), SUBDIR_CONCURRENCY);
    const jobs = new Pending();
    const { listing } = scanned;
    for (let i = 0; i < listing.count && !jobs.failed; i++) {
      // Each entry is made into objects only as it is handed over: a huge folder costs its listing's bytes.
      const name = listing.name(i);
      const child = joinPath(p, name);
      if (this.excluded(child)) continue;
      const st = listing.stat(i);
      if (typeof st === 'string') {
        this.error(displayPath(child), st);
        continue;
      }
      if (isDirectory(st)) {
        jobs.add(subdirs.push([child, name, st]));
        continue;
      }
      const previous = this.previousOf(scanned, name, child);
      const queue = isRegularFile(st) && st.size > WHOLE_FILE_LIMIT && !this.unchanged(st, previous) ? this.largeFiles : this.smallFiles;
      await this.fileRoom.take();
      jobs.add(this.fileRoom.hold(queue.push(async () => add(await this.captureEntry(child, name, st, previous, atPath)))));
    }
    await jobs.settled();
    return this.saveTree(tree);
  }

  /**
   * The parent snapshot's entry for `name`, decoded as it is asked for: one that cannot be
   * decoded is reported and treated as absent (the file is read again), never fatal midway.
   */
  private previousOf(scanned: Scan, name: Buffer, child: Buffer): Entry | undefined {
    try {
      return scanned.previous.get(name);
    } catch (e) {
      this.error(displayPath(child), `its entry in the parent snapshot cannot be read (${(e as Error).message}): read again`);
      return undefined;
    }
  }

  /** Lists and lstats a folder (one native job) while its parent-snapshot tree loads; undefined if it cannot be listed. */
  private async scanDir(p: Buffer, parentTree: Buffer | undefined): Promise<Scan | undefined> {
    const listing = scanDir(p).catch((e: Error) => {
      this.error(displayPath(p), `cannot list: ${e.message}`);
      return undefined;
    });
    const [listed, previous] = await Promise.all([listing, this.parentIndex(parentTree, p)]);
    return listed && { listing: listed, previous };
  }

  private unchanged(st: FileStat, previous: Entry | undefined): previous is Entry & { chunks: Buffer[] } {
    if (!previous || previous.type !== 'file' || !previous.chunks || previous.inconsistent) return false;
    return hasContentOf(st, previous);
  }

  /** Fills in a file's chunks; false when it could not be read (recorded as an error). */
  private async captureFile(p: Buffer, entry: Entry, st: FileStat, previous: Entry | undefined): Promise<boolean> {
    this.checkAborted();
    this.summary.files++;
    this.summary.bytes += entry.size;
    if (this.unchanged(st, previous) && previous.chunks.every((id) => this.repo.hasBlob(id))) {
      copyContent(previous, entry);
      this.progress(p);
      return true;
    }
    if (entry.links < 2) return this.readContent(p, entry);
    // Names of one inode are read once: the later ones wait for the first's content, and take
    // it if the inode is as it was when they were listed (else they read it themselves).
    const key = `${entry.device}:${entry.inode}`;
    const earlier = this.hardLinks.get(key);
    const content = earlier && (await earlier.content);
    if (content && hasContentOf(st, content)) {
      copyContent(content, entry);
      entry.atime = content.atime;
      if (content.inconsistent) entry.inconsistent = true;
      this.summary.linked = (this.summary.linked ?? 0) + 1;
      if (++earlier.names >= entry.links) this.hardLinks.delete(key); // every name seen: let it go
      return true;
    }
    const reading = this.readContent(p, entry);
    const read = reading.then((ok) => (ok ? entry : undefined), () => undefined);
    this.hardLinks.set(key, { names: 1, content: read }); // replaces a failed or outdated read
    return reading;
  }

  private async readContent(p: Buffer, entry: Entry): Promise<boolean> {
    const listedSize = entry.size;
    for (let attempt = 1; ; attempt++) {
      let result: ReadResult;
      try {
        result = await this.readFile(p, entry);
      } catch (e) {
        // Repository failures (disk full, backend, interruption) stop the backup; a file that cannot be read does not.
        if (e instanceof StrataError || this.stopped) {
          this.stopped = true;
          throw e;
        }
        this.summary.files--;
        this.summary.bytes -= listedSize;
        this.error(displayPath(p), (e as Error).message);
        return false;
      }
      entry.chunks = result.chunks;
      if (result.extents) {
        entry.sparse = true;
        entry.extents = result.extents;
      }
      if (!result.changed) break;
      if (attempt === READ_ATTEMPTS) {
        entry.inconsistent = true;
        this.error(displayPath(p), `changed while it was read (${READ_ATTEMPTS} attempts): stored as read, marked inconsistent`);
        break;
      }
    }
    this.summary.bytes += entry.size - listedSize; // it may have changed since it was listed
    this.summary.filesRead++;
    this.progress(p);
    return true;
  }

  private progress(p: Buffer): void {
    this.opts.onProgress?.({
      files: this.summary.files, bytes: this.summary.bytes, filesRead: this.summary.filesRead, bytesRead: this.summary.bytesRead,
      current: displayPath(p),
    });
  }

  /** Reads, chunks and stores one file; tells whether it changed while it was read. */
  private async readFile(p: Buffer, entry: Entry): Promise<ReadResult> {
    if (entry.size > WHOLE_FILE_LIMIT) return this.readLargeFile(p, entry);
    // Reused buffers: a fresh megabyte per file costs more than hashing it.
    const buffer = this.smallBuffers.pop() ?? Buffer.allocUnsafe(WHOLE_FILE_LIMIT + 1);
    try {
      const { data, before, after, blob } = await readSmallFile(p, buffer, this.repo.sealing);
      this.takeStat(entry, before, after);
      if (data.length > WHOLE_FILE_LIMIT) return this.readLargeFile(p, entry); // it grew past the limit
      const chunks = !data.length ? [] : blob ? [await this.storeSealedChunk(data.length, blob)] : [await this.storeChunk(data)];
      return { chunks, changed: !sameContentStat(before, after) || data.length !== before.size };
    } finally {
      this.smallBuffers.push(buffer);
    }
  }

  /**
   * The size and times stored are those of the content read; the access time is the one
   * after reading (where O_NOATIME is refused, reading sets it), so that the next backup,
   * which does not read the file, sees the same.
   */
  private takeStat(entry: Entry, before: FileStat, after: FileStat): void {
    entry.size = before.size;
    entry.mtime = before.mtime;
    entry.ctime = before.ctime;
    entry.atime = after.atime;
  }

  private async readLargeFile(p: Buffer, entry: Entry): Promise<ReadResult> {
    const handle = await openForReading(p);
    try {
      const before = statFromNode(await handle.stat({ bigint: true }));
      if (!isRegularFile(before)) throw new Error('is no longer a regular file');
      const size = before.size;
      const extents = before.blocks * 512 < size && size > 0 ? dataRanges(handle.fd, size) : undefined;
      const source = new FileSource(handle, size, extents);
      const chunks = await this.chunkStream(source);
      const after = statFromNode(await handle.stat({ bigint: true }));
      this.takeStat(entry, before, after);
      return { chunks, changed: !sameContentStat(before, after) || source.bytesSeen !== size, extents };
    } finally {
      await handle.close();
    }
  }

  private async chunkStream(source: FileSource): Promise<Buffer[]> {
    const window = this.windows.pop() ?? Buffer.allocUnsafe(this.repo.chunkerParams.maxSize + READ_SIZE);
    try {
      const chunks: Buffer[] = [];
      let start = 0;
      let end = 0;
      let eof = false;
      for (;;) {
        // Every chunk the window holds is stored at once: each is sealed in the thread pool
        // while the next is cut and hashed here.
        const stored: Promise<Buffer>[] = [];
        for (let length; (length = this.cut(window, start, end, eof)) > 0; start += length) {
          stored.push(this.storeChunk(window.subarray(start, start + length)));
        }
        // Meanwhile the disk reads on, into the room after `end`, where no chunk being stored lies.
        const ahead = !eof && window.length - end >= READ_SIZE ? source.read(window, end, READ_SIZE) : undefined;
        ahead?.catch(() => {}); // awaited below, once the stores have settled
        // All settle before the window is moved or given back: no job may still be reading it,
        // nor the read ahead still writing into it.
        for (const result of await Promise.allSettled(stored)) {
          if (result.status === 'rejected') {
            await ahead?.catch(() => 0);
            throw result.reason;
          }
          chunks.push(result.value);
        }
        if (eof) return chunks; // nothing left
        const take = (n: number) => {
          end += n;
          if (n === 0) eof = true;
        };
        if (ahead) take(await ahead);
        // Move what is left to the front; read now if the window had no room ahead.
        if (start > 0) {
          window.copy(window, 0, start, end);
          end -= start;
          start = 0;
        }
        if (!ahead) take(await source.read(window, end, Math.min(READ_SIZE, window.length - end)));
        this.checkAborted();
      }
    } finally {
      this.windows.push(window);
    }
  }

  private async storeChunk(data: Buffer): Promise<Buffer> {
    const id = this.repo.blobId(data);
    this.summary.bytesRead += data.length;
    this.countAdded(await this.repo.storeBlob('data', id, data));
    return id;
  }

  /** A small file's content, hashed and sealed by the job that read it. */
  private async storeSealedChunk(length: number, blob: { id: Buffer; sealed: Buffer; compressed: boolean }): Promise<Buffer> {
    this.summary.bytesRead += length;
    this.countAdded(await this.repo.storeSealed('data', blob.id, blob.sealed, length, blob.compressed));
    return blob.id;
  }

  private countAdded(added: number): void {
    if (added) {
      this.summary.blobsAdded++;
      this.summary.bytesAdded += added;
    }
  }
}

interface ReadResult {
  chunks: Buffer[];
  changed: boolean;
  /** A sparse file's data ranges. */
  extents?: [number, number][];
}

/** Whether a file as it is now (its lstat) is the one whose content `recorded` holds: same inode, size, mtime and ctime. */
const hasContentOf = (st: FileStat, recorded: Entry): boolean =>
  sameContentStat(st, { ...st, size: recorded.size, mtime: recorded.mtime, ctime: recorded.ctime, ino: recorded.inode });

/** The content of a file read before (unchanged, or another name of a hard link). */
function copyContent(from: Pick<Entry, 'chunks' | 'sparse' | 'extents'>, to: Entry): void {
  to.chunks = from.chunks;
  if (from.sparse) to.sparse = true;
  if (from.extents) to.extents = from.extents;
}

async function openForReading(p: Buffer): Promise<fs.FileHandle> {
  try {
    // O_NOATIME: a backup should not touch the access times it records.
    return await fs.open(p, constants.O_RDONLY | constants.O_NOATIME | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') throw e;
    return fs.open(p, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  }
}

/** The [start, end) ranges of a sparse file that hold data; holes read as zeros without touching the disk. */
function dataRanges(fd: number, size: number): [number, number][] {
  const ranges: [number, number][] = [];
  let offset = 0;
  while (offset < size) {
    const start = native.seekData(fd, offset);
    if (start < 0 || start >= size) break;
    const end = Math.min(native.seekHole(fd, start), size);
    ranges.push([start, end]);
    offset = end;
  }
  return ranges;
}

/** Sequential reads of a file of known size, zero-filling holes of sparse files instead of reading them. */
class FileSource {
  private position = 0;
  bytesSeen = 0;
  constructor(private readonly handle: fs.FileHandle, private readonly size: number, private readonly ranges?: [number, number][]) {}

  async read(buf: Buffer, offset: number, length: number): Promise<number> {
    let done = 0;
    while (done < length) {
      const want = length - done;
      let n: number;
      const hole = this.holeAt(this.position);
      if (hole > 0) {
        n = Math.min(want, hole);
        buf.fill(0, offset + done, offset + done + n);
      } else {
        n = (await this.handle.read(buf, offset + done, want, this.position)).bytesRead;
        if (n === 0) break;
      }
      done += n;
      this.position += n;
    }
    this.bytesSeen += done;
    return done;
  }

  /** Bytes of hole starting at `pos` (0 if `pos` is in data or there is no range list). */
  private holeAt(pos: number): number {
    if (!this.ranges || pos >= this.size) return 0;
    for (const [start, end] of this.ranges) {
      if (pos < start) return start - pos;
      if (pos < end) return 0;
    }
    return this.size - pos;
  }
}
