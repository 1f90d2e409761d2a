/**
 * A Backend in a local directory (a disk, or a NAS mounted over NFS/SMB).
 * Every save is temp file + fsync + rename + fsync of the folder, so an object
 * is either whole and durable or absent, whatever kills the process.
 * Temporary files live in `tmp/`, never listed; stale ones are swept on open.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs, constants } from 'node:fs';
import path from 'node:path';
import { errors } from '../errors.js';
import { processSpace, writerGone } from '../process.js';
import { checkObjectName, partsOf, type Backend, type ByteRange, type ObjectInfo } from './backend.js';

const TMP = 'tmp';
const STALE_TMP_MS = 24 * 3600 * 1000;

export class LocalBackend implements Backend {
  readonly location: string;
  private readonly knownDirs = new Set<string>();
  private swept?: Promise<void>;
  /** Ranged loads (blobs out of packs) reuse open files: one open per pack instead of one per blob. */
  private readonly handles = new HandleCache(64);

  constructor(readonly root: string) {
    this.location = path.resolve(root);
  }

  localPath(name: string): string {
    checkObjectName(name);
    return path.join(this.location, name);
  }

  /**
   * Removes temporary files that killed processes left behind: at once when they name a
   * process of this host (boot, pid namespace) that is gone, else once they are a day old.
   */
  async sweepTemporaryFiles(now = Date.now()): Promise<void> {
    const dir = path.join(this.location, TMP);
    const names = await fs.readdir(dir).catch(() => [] as string[]);
    for (const name of names) {
      const file = path.join(dir, name);
      const writer = /\.[0-9a-f]{12}\.(\d+)\.([0-9a-f]{12})$/.exec(name);
      const orphan = writer !== null && writerGone(writer[2], Number(writer[1]));
      const st = orphan ? null : await fs.stat(file).catch(() => null);
      if (orphan || (st && now - st.mtimeMs > STALE_TMP_MS)) await fs.rm(file, { force: true });
    }
  }

  async save(name: string, data: Uint8Array | readonly Uint8Array[]): Promise<void> {
    checkObjectName(name);
    // The first write of a process clears what killed writers left in tmp/.
    this.swept ??= this.sweepTemporaryFiles().catch(() => {});
    const target = path.join(this.location, name);
    const tmpDir = path.join(this.location, TMP);
    // Named by writer (pid and process space), so the next writer knows which ones a dead process left.
    const tmp = path.join(tmpDir, `${path.basename(name)}.${randomBytes(6).toString('hex')}.${process.pid}.${processSpace()}`);
    await this.io('save', name, async () => {
      await this.ensureDir(tmpDir);
      const dir = path.dirname(target);
      await this.ensureDir(dir);
      const handle = await fs.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
      try {
        for (const piece of coalesce(partsOf(data))) {
          let written = 0;
          while (written < piece.length) {
            const { bytesWritten } = await handle.write(piece, written, piece.length - written);
            written += bytesWritten;
          }
        }
        await handle.sync();
      } catch (e) {
        await handle.close().catch(() => {});
        await fs.rm(tmp, { force: true });
        throw e;
      }
      await handle.close();
      this.handles.retire(target);
      try {
        await fs.rename(tmp, target);
      } catch (e) {
        await fs.rm(tmp, { force: true });
        throw e;
      }
      await syncDir(dir);
    });
  }

  async load(name: string, range?: ByteRange): Promise<Buffer> {
    checkObjectName(name);
    const file = path.join(this.location, name);
    return this.io('load', name, async () => {
      if (!range) return fs.readFile(file);
      const { handle, release } = await this.handles.acquire(file);
      try {
        const buffer = Buffer.allocUnsafe(range.length);
        let done = 0;
        while (done < range.length) {
          const { bytesRead } = await handle.read(buffer, done, range.length - done, range.offset + done);
          if (bytesRead === 0) break;
          done += bytesRead;
        }
        return done === range.length ? buffer : buffer.subarray(0, done);
      } finally {
        release();
      }
    });
  }

  async stat(name: string): Promise<ObjectInfo> {
    checkObjectName(name);
    const st = await this.io('stat', name, () => fs.stat(path.join(this.location, name)));
    return { name, size: st.size };
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    // Walk the deepest folder the prefix names, then filter by the rest.
    const slash = prefix.lastIndexOf('/');
    const base = slash < 0 ? '' : prefix.slice(0, slash);
    yield* this.walk(base, prefix);
  }

  private async *walk(dir: string, prefix: string): AsyncIterable<ObjectInfo> {
    if (dir === TMP) return;
    const full = path.join(this.location, dir);
    let entries;
    try {
      entries = await fs.readdir(full, { withFileTypes: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw errors.backend(`cannot list ${full}: ${(e as Error).message}`, { cause: e });
    }
    for (const entry of entries) {
      const name = dir ? `${dir}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        if (prefix.startsWith(`${name}/`) || name.startsWith(prefix)) yield* this.walk(name, prefix);
      } else if (entry.isFile() && name.startsWith(prefix)) {
        const st = await fs.stat(path.join(full, entry.name)).catch(() => null);
        if (st) yield { name, size: st.size };
      }
    }
  }

  async remove(name: string): Promise<void> {
    checkObjectName(name);
    this.handles.retire(path.join(this.location, name));
    await this.io('remove', name, () => fs.rm(path.join(this.location, name), { force: true }));
  }

  async close(): Promise<void> {
    this.handles.closeAll();
  }

  private async ensureDir(dir: string): Promise<void> {
    if (this.knownDirs.has(dir)) return;
    await fs.mkdir(dir, { recursive: true });
    this.knownDirs.add(dir);
  }

  /** Runs one file-system operation and maps its failure to a StrataError naming the object. */
  private async io<T>(op: string, name: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw errors.notFound(`object ${name} does not exist in ${this.location}`, { cause: e });
      if (code === 'ENOSPC' || code === 'EDQUOT') {
        throw errors.noSpace(`no space left on the repository disk at ${this.location} while saving ${name}`, { cause: e });
      }
      throw errors.backend(`${op} ${name} in ${this.location} failed: ${(e as Error).message}`, { cause: e });
    }
  }
}

/** Joins runs of small parts (a tree pack holds thousands) so a save makes few write calls; large parts pass as they are. */
function* coalesce(parts: readonly Uint8Array[], target = 1024 * 1024): Iterable<Uint8Array> {
  let run: Uint8Array[] = [];
  let runBytes = 0;
  for (const part of parts) {
    if (part.length >= target) {
      if (run.length) yield Buffer.concat(run);
      run = [];
      runBytes = 0;
      yield part;
      continue;
    }
    run.push(part);
    runBytes += part.length;
    if (runBytes >= target) {
      yield Buffer.concat(run);
      run = [];
      runBytes = 0;
    }
  }
  if (run.length) yield Buffer.concat(run);
}

async function syncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

interface HandleSlot {
  handle: Promise<fs.FileHandle>;
  users: number;
  retired: boolean;
}

/** Open read-only files by path, least recently used closed first, never while a read uses them. */
class HandleCache {
  private readonly open = new Map<string, HandleSlot>();
  constructor(private readonly limit: number) {}

  /** An open handle for `file` and the function to call when done with it. */
  async acquire(file: string): Promise<{ handle: fs.FileHandle; release: () => void }> {
    let slot = this.open.get(file);
    if (slot) this.open.delete(file); // re-inserted below as most recently used
    else slot = { handle: fs.open(file, 'r'), users: 0, retired: false };
    this.open.set(file, slot);
    slot.users++;
    const release = (): void => {
      slot.users--;
      if (slot.retired && slot.users === 0) closeSlot(slot);
    };
    try {
      const handle = await slot.handle;
      for (const [name, other] of this.open) {
        if (this.open.size <= this.limit) break;
        this.retire(name, other);
      }
      return { handle, release };
    } catch (e) {
      release();
      this.retire(file, slot);
      throw e;
    }
  }

  /** Closes the handle of a file that is replaced or removed (once its readers are done). */
  retire(file: string, slot = this.open.get(file)): void {
    if (!slot || this.open.get(file) !== slot) return;
    this.open.delete(file);
    slot.retired = true;
    if (slot.users === 0) closeSlot(slot);
  }

  closeAll(): void {
    for (const [file, slot] of [...this.open]) this.retire(file, slot);
  }
}

function closeSlot(slot: HandleSlot): void {
  slot.handle.then((h) => h.close()).catch(() => {});
}
