/**
 * Capture: one incremental snapshot of one or more source paths.
 *
 * walk → compare each file with the parent snapshot's entry (size, mtime,
 * ctime, inode): unchanged files reuse their chunk ids without being read →
 * changed files are read, cut by the native chunker, hashed, and stored through
 * the BlobWriter (compress + seal + pack) → each directory becomes a tree, an
 * unchanged directory yields the same tree id and costs nothing → after a
 * flush makes every pack durable, the snapshot record is saved.
 *
 * Files are read a few at a time (bounded fastq queues), large ones through a
 * reused window, so memory does not grow with the size of the share.
 */
import { constants, promises as fs, type BigIntStats } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fastq from 'fastq';
import { Minimatch } from 'minimatch';
import { native } from '../native.js';
import { makeCutter, type CutFunction } from '../store/chunker.js';
import { errors } from '../store/errors.js';
import type { ChunkerParams, Snapshot, SnapshotSummary } from '../store/format/records.js';
import type { Entry } from '../store/format/tree.js';
import type { BlobWriter, SnapshotRef, SnapshotWriter, TreeReader } from '../store/roles.js';
import { displayPath, entryFromStat, joinPath, readXattrs, sameTime } from './local-fs.js';

export interface CaptureOptions {
  paths: string[];
  host?: string;
  tags?: string[];
  /** Glob patterns: without "/" they match a name anywhere, with "/" the whole path. */
  excludes?: string[];
  oneFileSystem?: boolean;
  parent?: SnapshotRef;
  chunker: ChunkerParams;
  onProgress?: (p: CaptureProgress) => void;
  /** Told about every file that could not be read (it is also in the summary). */
  onError?: (path: string, message: string) => void;
  signal?: AbortSignal;
  now?: () => Date;
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

export type CaptureRepo = BlobWriter & TreeReader & SnapshotWriter;

/** Files read at once; small ones mostly wait on the disk, so several overlap. */
const FILE_CONCURRENCY = 8;
/** Files larger than this stream through a window; smaller ones are read whole. */
const WHOLE_FILE_LIMIT = 1024 * 1024;
/** Large files streamed at once (each holds a window of maxChunk + READ_SIZE bytes). */
const LARGE_FILE_CONCURRENCY = 1;
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
  const walker = new Walker(repo, opts, summary);
  const root = await walker.captureRoots(sources, opts.parent?.snapshot.tree);
  await repo.flush();
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
  return { id: await repo.saveSnapshot(snapshot), snapshot };
}

type ParentIndex = Map<string, Entry>;
const nameKey = (name: Buffer): string => name.toString('latin1');

class Walker {
  private readonly cut: CutFunction;
  private readonly excludes: Minimatch[];
  private readonly smallFiles = fastq.promise((job: () => Promise<void>) => job(), FILE_CONCURRENCY);
  private readonly largeFiles = fastq.promise((job: () => Promise<void>) => job(), LARGE_FILE_CONCURRENCY);
  private readonly windows: Buffer[] = [];
  /** Chunk ids of hard-linked files already read in this snapshot, by device:inode. */
  private readonly hardLinks = new Map<string, { chunks: Buffer[]; sparse?: boolean }>();
  private rootDevice = 0;

  constructor(private readonly repo: CaptureRepo, private readonly opts: CaptureOptions, private readonly summary: Counters) {
    this.cut = makeCutter(opts.chunker);
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
    const build = async (node: Node, dirPath: string, parentTree: Buffer | undefined): Promise<Buffer> => {
      const parentEntries = await this.parentIndex(parentTree);
      const entries: Entry[] = [];
      for (const [part, child] of node.children) {
        const childPath = path.join(dirPath, part);
        const name = Buffer.from(part);
        const st = await this.lstat(Buffer.from(childPath));
        if (!st) continue;
        const previous = parentEntries.get(nameKey(name));
        if (child.source !== undefined) {
          this.rootDevice = Number(st.dev);
          const entry = await this.captureEntry(Buffer.from(childPath), name, st, previous);
          if (entry) entries.push(entry);
        } else {
          const entry = entryFromStat(name, st)!;
          if (entry.type !== 'dir') {
            this.error(childPath, 'is not a directory (it is on the way to a source path)');
            continue;
          }
          entry.xattrs = readXattrs(Buffer.from(childPath));
          entry.subtree = await build(child, childPath, previous?.type === 'dir' ? previous.subtree : undefined);
          entries.push(entry);
        }
      }
      return this.saveTree(entries);
    };
    if (sources.length === 0) throw errors.usage('nothing to back up: give at least one path');
    return build(top, '/', parentRoot);
  }

  private async saveTree(entries: Entry[]): Promise<Buffer> {
    const { id, added } = await this.repo.saveTree(entries);
    if (added) {
      this.summary.blobsAdded++;
      this.summary.bytesAdded += added;
    }
    return id;
  }

  private async parentIndex(tree: Buffer | undefined): Promise<ParentIndex> {
    const index: ParentIndex = new Map();
    if (tree) for (const e of await this.repo.loadTree(tree)) index.set(nameKey(e.name), e);
    return index;
  }

  private async lstat(p: Buffer): Promise<BigIntStats | undefined> {
    try {
      return await fs.lstat(p, { bigint: true });
    } catch (e) {
      this.error(displayPath(p), (e as Error).message);
      return undefined;
    }
  }

  private error(p: string, message: string): void {
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

  /** Captures one entry of any type; undefined when it cannot be captured (recorded as an error). */
  private async captureEntry(p: Buffer, name: Buffer, st: BigIntStats, previous: Entry | undefined): Promise<Entry | undefined> {
    const entry = entryFromStat(name, st);
    if (!entry) {
      this.error(displayPath(p), 'has an unknown file type');
      return undefined;
    }
    try {
      entry.xattrs = readXattrs(p);
    } catch (e) {
      this.error(displayPath(p), `extended attributes: ${(e as Error).message}`);
    }
    if (entry.xattrs?.length === 0) delete entry.xattrs;
    switch (entry.type) {
      case 'dir':
        this.summary.dirs++;
        entry.subtree = await this.captureDir(p, entry, previous?.type === 'dir' ? previous.subtree : undefined);
        return entry;
      case 'file':
        return (await this.captureFile(p, entry, st, previous)) ? entry : undefined;
      case 'symlink':
        this.summary.others++;
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

  private async captureDir(p: Buffer, dir: Entry, parentTree: Buffer | undefined): Promise<Buffer> {
    this.checkAborted();
    if (this.opts.oneFileSystem && dir.device !== this.rootDevice) return this.saveTree([]);
    let names: Buffer[];
    try {
      names = await fs.readdir(p, { encoding: 'buffer' });
    } catch (e) {
      this.error(displayPath(p), `cannot list: ${(e as Error).message}`);
      return this.saveTree([]);
    }
    const parentEntries = await this.parentIndex(parentTree);
    const entries: Entry[] = [];
    const fileJobs: Promise<void>[] = [];
    const subdirs: [Buffer, Buffer, BigIntStats][] = [];
    await Promise.all(names.map(async (name) => {
      const child = joinPath(p, name);
      if (this.excluded(child)) return;
      const st = await this.lstat(child);
      if (!st) return;
      if (st.isDirectory()) {
        subdirs.push([child, name, st]);
        return;
      }
      const previous = parentEntries.get(nameKey(name));
      const queue = st.isFile() && st.size > WHOLE_FILE_LIMIT && !this.unchanged(st, previous) ? this.largeFiles : this.smallFiles;
      fileJobs.push(queue.push(async () => {
        const entry = await this.captureEntry(child, name, st, previous);
        if (entry) entries.push(entry);
      }));
    }));
    // Subdirectories one after another (depth first keeps memory bounded), while this folder's files proceed.
    subdirs.sort((a, b) => Buffer.compare(a[1], b[1]));
    for (const [child, name, st] of subdirs) {
      const entry = await this.captureEntry(child, name, st, parentEntries.get(nameKey(name)));
      if (entry) entries.push(entry);
    }
    await Promise.all(fileJobs);
    return this.saveTree(entries);
  }

  private unchanged(st: BigIntStats, previous: Entry | undefined): previous is Entry & { chunks: Buffer[] } {
    if (!previous || previous.type !== 'file' || !previous.chunks || previous.inconsistent) return false;
    const now = entryFromStat(previous.name, st)!;
    return now.size === previous.size && sameTime(now.mtime, previous.mtime) && sameTime(now.ctime, previous.ctime) &&
      now.inode === previous.inode;
  }

  /** Fills in a file's chunks; false when it could not be read (recorded as an error). */
  private async captureFile(p: Buffer, entry: Entry, st: BigIntStats, previous: Entry | undefined): Promise<boolean> {
    this.checkAborted();
    this.summary.files++;
    this.summary.bytes += entry.size;
    if (this.unchanged(st, previous) && previous.chunks.every((id) => this.repo.hasBlob(id))) {
      entry.chunks = previous.chunks;
      if (previous.sparse) entry.sparse = true;
      this.progress(p);
      return true;
    }
    const linkKey = entry.links > 1 ? `${entry.device}:${entry.inode}` : undefined;
    const linked = linkKey ? this.hardLinks.get(linkKey) : undefined;
    if (linked) {
      entry.chunks = linked.chunks;
      if (linked.sparse) entry.sparse = true;
      return true;
    }
    for (let attempt = 1; ; attempt++) {
      let result: ReadResult;
      try {
        result = await this.readFile(p, entry);
      } catch (e) {
        if ((e as { code?: string }).code === 'INTERRUPTED' || (e as { code?: string }).code === 'NO_SPACE' ||
            (e as { code?: string }).code === 'BACKEND') throw e;
        this.summary.files--;
        this.summary.bytes -= entry.size;
        this.error(displayPath(p), (e as Error).message);
        return false;
      }
      entry.chunks = result.chunks;
      if (result.sparse) entry.sparse = true;
      if (!result.changed) break;
      if (attempt === READ_ATTEMPTS) {
        entry.inconsistent = true;
        this.error(displayPath(p), `changed while it was read (${READ_ATTEMPTS} attempts): stored as read, marked inconsistent`);
        break;
      }
    }
    if (linkKey) this.hardLinks.set(linkKey, { chunks: entry.chunks!, sparse: entry.sparse });
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
    const handle = await openForReading(p);
    try {
      const before = await handle.stat({ bigint: true });
      if (!before.isFile()) throw new Error('is no longer a regular file');
      const fresh = entryFromStat(entry.name, before)!;
      // The size and times stored are those of the content read.
      entry.size = fresh.size;
      entry.mtime = fresh.mtime;
      entry.ctime = fresh.ctime;
      const size = fresh.size;
      const sparse = Number(before.blocks) * 512 < size && size > 0;
      const source = new FileSource(handle, size, sparse ? dataRanges(handle.fd, size) : undefined);
      const chunks = size <= WHOLE_FILE_LIMIT ? await this.chunkWhole(source, size) : await this.chunkStream(source);
      const after = await handle.stat({ bigint: true });
      const changed = after.size !== before.size || after.mtimeNs !== before.mtimeNs || after.ctimeNs !== before.ctimeNs ||
        source.bytesSeen !== size;
      return { chunks, changed, sparse };
    } finally {
      await handle.close();
    }
  }

  private async chunkWhole(source: FileSource, size: number): Promise<Buffer[]> {
    const buf = Buffer.allocUnsafe(size);
    const n = await source.read(buf, 0, size);
    return n === 0 ? [] : [await this.storeChunk(buf.subarray(0, n))];
  }

  private async chunkStream(source: FileSource): Promise<Buffer[]> {
    const window = this.windows.pop() ?? Buffer.allocUnsafe(this.opts.chunker.maxSize + READ_SIZE);
    try {
      const chunks: Buffer[] = [];
      let start = 0;
      let end = 0;
      let eof = false;
      for (;;) {
        const length = this.cut(window, start, end, eof);
        if (length > 0) {
          chunks.push(await this.storeChunk(window.subarray(start, start + length)));
          start += length;
          if (start === end && eof) return chunks;
          continue;
        }
        if (eof) return chunks; // nothing left
        // Need more data: move what is left to the front and read on.
        if (start > 0) {
          window.copy(window, 0, start, end);
          end -= start;
          start = 0;
        }
        const n = await source.read(window, end, Math.min(READ_SIZE, window.length - end));
        end += n;
        if (n === 0) eof = true;
        this.checkAborted();
      }
    } finally {
      this.windows.push(window);
    }
  }

  private async storeChunk(data: Buffer): Promise<Buffer> {
    const id = this.repo.blobId(data);
    this.summary.bytesRead += data.length;
    const added = await this.repo.storeBlob('data', id, data);
    if (added) {
      this.summary.blobsAdded++;
      this.summary.bytesAdded += added;
    }
    return id;
  }
}

interface ReadResult {
  chunks: Buffer[];
  changed: boolean;
  sparse: boolean;
}

async function openForReading(p: Buffer): Promise<fs.FileHandle> {
  try {
    // O_NOATIME: a backup should not touch the access times it records.
    return await fs.open(p, constants.O_RDONLY | constants.O_NOATIME | constants.O_NOFOLLOW);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') throw e;
    return fs.open(p, constants.O_RDONLY | constants.O_NOFOLLOW);
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
