/**
 * Restore: writes any directory (or single entry) of a snapshot to a target
 * folder, exactly: content (sparse files stay sparse), modes with setuid and
 * sticky bits, owners (when run as root), nanosecond times, extended
 * attributes and ACLs, hard links, symlinks, FIFOs and device nodes.
 *
 * Safety: names were validated when their trees were decoded; restore only
 * joins such names below the target, never follows a symlink it finds on the
 * way (an existing one is replaced), so it never writes outside the target.
 */
import { chmodSync, constants, lchownSync, promises as fs } from 'node:fs';
import fastq from 'fastq';
import { Minimatch } from 'minimatch';
import { native } from '../native.js';
import { errors } from '../store/errors.js';
import { modeBitsOf, type Entry } from '../store/format/tree.js';
import { displayPath, joinPath } from './local-fs.js';
import { Pending, Room } from './room.js';
import { fileChunks, type Reader } from './tree-walk.js';

export interface RestoreOptions {
  /** Glob patterns on the path inside the restored tree ("docs/**", "*.pdf"); when given, only matches (and their folders) are written. */
  includes?: string[];
  onProgress?: (p: RestoreProgress) => void;
  onError?: (path: string, message: string) => void;
  signal?: AbortSignal;
}

export interface RestoreProgress {
  files: number;
  bytes: number;
  current?: string;
}

export interface RestoreResult extends RestoreProgress {
  errors: { path: string; message: string }[];
}

/** Files of one chunk written at once: small files are latency-bound. */
const FILE_CONCURRENCY = 8;
/** Files of several chunks written at once: each holds two chunks (up to 8 MiB each) while it writes. */
const LARGE_FILE_CONCURRENCY = 2;
/** Files handed to the writers and not yet written before the walk pauses: bounds memory on huge snapshots. */
const FILE_BACKLOG = 256;
/** Subfolders of one folder restored at once. */
const SUBDIR_CONCURRENCY = 4;
/** Owners can only be restored by root; others keep their own. */
const runningAsRoot = process.getuid?.() === 0;

/**
 * Restores `entry` into `target`: a directory's contents (and, unless it is a
 * snapshot's synthetic root, its own metadata onto `target`), or one entry
 * as `target/<name>`.
 */
export async function restore(reader: Reader, entry: Entry, target: string, opts: RestoreOptions & { isRoot?: boolean } = {}): Promise<RestoreResult> {
  const r = new Restorer(reader, opts);
  await fs.mkdir(target, { recursive: true });
  const targetPath = Buffer.from(target);
  if (entry.type === 'dir') {
    const empty = (await fs.readdir(target)).length === 0;
    await r.restoreChildren(entry, targetPath, Buffer.alloc(0), empty);
    if (!opts.isRoot) r.afterFiles(targetPath, entry);
  } else {
    await r.restoreEntry(entry, joinPath(targetPath, entry.name), entry.name);
  }
  await r.finish();
  return r.result;
}

class Restorer {
  readonly result: RestoreResult = { files: 0, bytes: 0, errors: [] };
  private readonly includes: Minimatch[];
  private readonly files = fastq.promise((job: () => Promise<void>) => job(), FILE_CONCURRENCY);
  private readonly largeFiles = fastq.promise((job: () => Promise<void>) => job(), LARGE_FILE_CONCURRENCY);
  /** Backpressure: a place for every file handed to the writers, so the walk never runs far ahead of writing. */
  private readonly fileRoom = new Room(FILE_BACKLOG);
  private readonly pendingFiles = new Pending();
  /** First restored path of each hard-linked inode, by device:inode. */
  private readonly linked = new Map<string, Promise<Buffer>>();

  constructor(private readonly reader: Reader, private readonly opts: RestoreOptions) {
    this.includes = (opts.includes ?? []).map((p) => new Minimatch(p, { dot: true, matchBase: !p.includes('/') }));
  }

  /** Whether `rel` matches an include pattern or, for a folder, something below it could. */
  private wanted(rel: Buffer, isDir: boolean): boolean {
    if (this.includes.length === 0) return true;
    const text = displayPath(rel);
    // A name pattern ("*.pdf") can match inside any folder; a path pattern only below a matching prefix.
    return this.includes.some((m) => m.match(text) || (isDir && (m.options.matchBase || m.match(text, true))));
  }

  async restoreChildren(dir: Entry, dirPath: Buffer, rel: Buffer, fresh = false): Promise<void> {
    const subdirs = fastq.promise((job: () => Promise<void>) => job(), SUBDIR_CONCURRENCY);
    const jobs = new Pending();
    for (const child of await this.reader.loadTree(dir.subtree!)) {
      const childRel = rel.length ? Buffer.concat([rel, Buffer.from('/'), child.name]) : child.name;
      if (!this.wanted(childRel, child.type === 'dir')) continue;
      const job = () => this.restoreEntry(child, joinPath(dirPath, child.name), childRel, fresh);
      if (child.type === 'dir') jobs.add(subdirs.push(job));
      else await job(); // returns once a file is handed to the writers (it waits for a place)
    }
    await jobs.settled();
  }

  /** `inFreshFolder`: the folder was just created here, so nothing is in the way. */
  async restoreEntry(entry: Entry, p: Buffer, rel: Buffer, inFreshFolder = false): Promise<void> {
    if (this.opts.signal?.aborted) throw errors.interrupted('restore interrupted');
    try {
      if (entry.type === 'dir') {
        const created = inFreshFolder ? (await fs.mkdir(p, { mode: 0o700 }), true) : await this.makeDir(p);
        await this.restoreChildren(entry, p, rel, created);
        this.afterFiles(p, entry);
        return;
      }
      if (!inFreshFolder) await removeExisting(p);
      if (entry.type === 'file') {
        await this.fileRoom.take();
        const queue = (entry.chunks?.length ?? 0) > 1 ? this.largeFiles : this.files;
        const written = queue.push(() => this.restoreFile(entry, p)).catch((e) => this.fail(p, e));
        this.pendingFiles.add(this.fileRoom.hold(written));
        return;
      }
      if (entry.type === 'symlink') await fs.symlink(entry.target!, p);
      else if (entry.type === 'socket') return; // a socket is recreated by the program that listens on it
      else native.mknod(p, modeBitsOf(entry.type) | (entry.mode & 0o7777), entry.rdev ?? 0);
      await this.applyMetadata(entry, p);
    } catch (e) {
      this.fail(p, e);
    }
  }

  /** Records a failure for one path and goes on; only an interruption stops the restore. */
  private fail(p: Buffer, e: unknown): void {
    if ((e as { code?: string }).code === 'INTERRUPTED') throw e;
    const message = (e as Error).message;
    this.result.errors.push({ path: displayPath(p), message });
    this.opts.onError?.(displayPath(p), message);
  }

  /** Makes the folder unless it is there (anything else in its place is replaced); true when it was created. */
  private async makeDir(p: Buffer): Promise<boolean> {
    const st = await fs.lstat(p).catch(() => undefined);
    if (st?.isDirectory()) return false;
    if (st) await fs.rm(p, { force: true });
    await fs.mkdir(p, { mode: 0o700 });
    return true;
  }

  private async restoreFile(entry: Entry, p: Buffer): Promise<void> {
    const linkKey = entry.links > 1 ? `${entry.device}:${entry.inode}` : undefined;
    const first = linkKey ? this.linked.get(linkKey) : undefined;
    if (first) {
      await fs.link(await first, p);
      return;
    }
    const written = this.writeFile(entry, p).then(() => p);
    if (linkKey) this.linked.set(linkKey, written);
    await written;
    this.result.files++;
    this.opts.onProgress?.({ files: this.result.files, bytes: this.result.bytes, current: displayPath(p) });
  }

  private async writeFile(entry: Entry, p: Buffer): Promise<void> {
    const chunks = entry.chunks ?? [];
    if (chunks.length <= 1 && !entry.sparse) {
      // Most NAS files are one chunk: create, write and close in one native job.
      const data = chunks.length ? await this.reader.loadBlob('data', chunks[0]) : Buffer.alloc(0);
      this.checkSize(p, data.length, entry);
      await new Promise<void>((resolve, reject) => native.writeNew(p, data, (err) => (err ? reject(err) : resolve())));
      this.result.bytes += data.length;
    } else {
      const handle = await fs.open(p, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
      try {
        let position = 0;
        for await (const chunk of fileChunks(this.reader, entry)) {
          if (entry.sparse) await writeSkippingZeros(handle, chunk, position);
          else await writeAll(handle, chunk, position);
          position += chunk.length;
          this.result.bytes += chunk.length;
        }
        this.checkSize(p, position, entry);
        // Holes at the end of a sparse file are not written: the size sets them.
        if (entry.sparse) await handle.truncate(position);
      } finally {
        await handle.close();
      }
    }
    await this.applyMetadata(entry, p);
  }

  private checkSize(p: Buffer, stored: number, entry: Entry): void {
    if (stored !== entry.size) throw errors.corrupt(`${displayPath(p)}: stored content is ${stored} bytes but the file had ${entry.size}`);
  }

  /**
   * Owner, then mode (chown clears setuid), then xattrs and ACLs, then times.
   * Synchronous: each is one quick syscall, cheaper than a thread-pool round trip.
   */
  private async applyMetadata(entry: Entry, p: Buffer): Promise<void> {
    if (runningAsRoot) lchownSync(p, entry.uid, entry.gid);
    if (entry.type !== 'symlink') chmodSync(p, entry.mode);
    for (const [name, value] of entry.xattrs ?? []) {
      try {
        native.setXattr(p, name, value);
      } catch (e) {
        this.fail(p, new Error(`extended attribute ${name}: ${(e as Error).message}`));
      }
    }
    native.utimesNs(p, entry.atime[0], entry.atime[1], entry.mtime[0], entry.mtime[1]);
  }

  private readonly folders: [Buffer, Entry][] = [];
  /**
   * Folder metadata waits until every file (written in the background) is
   * done, since creating contents changes a folder's times.
   */
  afterFiles(p: Buffer, entry: Entry): void {
    this.folders.push([p, entry]);
  }

  async finish(): Promise<void> {
    await this.pendingFiles.settled();
    // Innermost folders were queued first, so a parent's times are set after its children's.
    for (const [p, entry] of this.folders) await this.applyMetadata(entry, p).catch((e) => this.fail(p, e));
  }
}

async function removeExisting(p: Buffer): Promise<void> {
  const st = await fs.lstat(p).catch(() => undefined);
  if (st) await fs.rm(p, { recursive: st.isDirectory(), force: true });
}

async function writeAll(handle: fs.FileHandle, data: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

const BLOCK = 4096;
const ZERO_BLOCK = Buffer.alloc(BLOCK);

/** Writes only the non-zero blocks of `data`: the zero runs of a sparse file become holes again. */
async function writeSkippingZeros(handle: fs.FileHandle, data: Buffer, position: number): Promise<void> {
  let runStart = -1;
  for (let i = 0; i < data.length; i += BLOCK) {
    const block = data.subarray(i, i + BLOCK);
    const zero = block.equals(ZERO_BLOCK.subarray(0, block.length));
    if (!zero && runStart < 0) runStart = i;
    if (zero && runStart >= 0) {
      await writeAll(handle, data.subarray(runStart, i), position + runStart);
      runStart = -1;
    }
  }
  if (runStart >= 0) await writeAll(handle, data.subarray(runStart), position + runStart);
}
