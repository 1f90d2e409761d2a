/**
 * The thin adapter between the SnapshotView and the C binding (fuse-binding.ts):
 * it answers the binding's jobs (a folder to list, file data to read) from the
 * view, tells the binding when the snapshot list
 * changes, and maps failures onto errno (errno.ts). Everything else, every metadata
 * call included, C answers from its own table without coming here; on a local
 * repository C also reads and opens file data itself, so it never passes through JS.
 */
import { promises as fs } from 'node:fs';
import { errors } from '../store/errors.js';
import { decodeDirRef, decodeFileRef, encodeBatch } from './batch.js';
import { Errno, errnoOf } from './errno.js';
import { fuseBinding, JOB_CLOSED, JOB_LOAD, JOB_LOG, JOB_READ, type FuseStats, type Session } from './fuse-binding.js';
import { prepareMountpoint } from './mountpoint.js';
import type { SnapshotView } from './vtree.js';

export interface MountOptions {
  /** Let other users (and Samba) in; the kernel then enforces the stored modes and owners. */
  allowOther?: boolean;
  /** How often the snapshot list is read again, so that new snapshots show up (ms). */
  refreshMs?: number;
  /** Told about every failed listing or read, with the path and the reason (damaged chunk, missing pack…). */
  onError?: (path: string, message: string) => void;
}

export interface Mounted {
  /** Unmounts; resolves once the session has ended (or, if something still uses the mount, soon after it is detached). */
  unmount(): Promise<void>;
  /** Resolves when the session ends, however it ends (our unmount, `fusermount -u` or `umount` from outside). */
  readonly closed: Promise<void>;
  /** Counters of FUSE calls and of those that reached JS (undefined once closed). */
  stats(): FuseStats | undefined;
}

/** How long an unmount waits for the kernel to let go before the caller moves on (the process exiting closes the rest). */
const UNMOUNT_WAIT_MS = 2000;

/** How far the kernel reads ahead in a file (the default is 128 KiB: 1 MiB took large files from ~350 to ~600 MB/s here). */
const READ_AHEAD_KB = 1024;

/** Raises the mount's readahead (root only; elsewhere the kernel's default stays). */
async function widenReadahead(mountpoint: string): Promise<void> {
  const { dev } = await fs.stat(mountpoint);
  const major = Math.floor(dev / 256) & 0xfff;
  const minor = (dev & 0xff) | (Math.floor(dev / 4096) & 0xfff00);
  await fs.writeFile(`/sys/class/bdi/${major}:${minor}/read_ahead_kb`, String(READ_AHEAD_KB)).catch(() => {});
}

export async function mountView(view: SnapshotView, mountpoint: string, opts: MountOptions = {}): Promise<Mounted> {
  await prepareMountpoint(mountpoint);
  const fuse = fuseBinding();
  await view.refresh();
  let session: Session | undefined;
  let onClosed!: () => void;
  const closed = new Promise<void>((resolve) => { onClosed = resolve; });

  const logFailure = (nodeid: number, message: string): void => {
    opts.onError?.((session && fuse.pathOf(session, nodeid)?.toString()) ?? '?', message);
  };
  const fail = (nodeid: number, e: unknown): number => {
    const errno = errnoOf(e);
    if (errno === Errno.EIO) logFailure(nodeid, (e as Error).message);
    return errno;
  };
  const load = async (id: number, ref: Buffer, nodeid: number): Promise<void> => {
    const dir = decodeDirRef(ref);
    let batch: Buffer;
    try {
      batch = encodeBatch(await view.list(dir), dir, locate);
    } catch (e) {
      if (session) fuse.loadFailed(session, id, fail(nodeid, e));
      return;
    }
    try {
      fuse.loadDone(session!, id, batch);
    } catch (e) {
      fail(nodeid, e); // a listing C refused: logged; the waiting calls got EIO
    }
  };
  // On a local disk C reads file data itself: each folder's batch then says where its files' chunks lie.
  const direct = view.directReads();
  const locate = direct?.locate;
  const read = async (id: number, ref: Buffer, index: number, offset: number, size: number, nodeid: number): Promise<void> => {
    try {
      const file = await view.openFile(decodeFileRef(ref, index));
      const data = await file.read(offset, size);
      if (session) fuse.readDone(session, id, data);
    } catch (e) {
      if (session) fuse.readFailed(session, id, fail(nodeid, e));
    }
  };
  const setNamespaces = async (): Promise<void> => {
    const namespaces = await view.xattrNamespaces();
    if (session) fuse.setNamespaces(session, !namespaces || namespaces.has('security'), !namespaces || namespaces.has('system'));
  };

  try {
    session = fuse.mount(mountpoint, encodeBatch([view.rootEntry()], undefined), {
      allowOther: !!opts.allowOther, direct: direct && { packRoot: direct.packRoot, encryption: direct.encryption, id: direct.id },
    },
      (kind, id, ref, index, offset, size, nodeid) => {
        if (kind === JOB_LOAD) void load(id, ref, nodeid);
        else if (kind === JOB_READ) void read(id, ref, index, offset, size, nodeid);
        else if (kind === JOB_LOG) logFailure(nodeid, ref.toString());
        else if (kind === JOB_CLOSED) {
          session = undefined;
          onClosed();
        }
      });
  } catch (e) {
    throw errors.usage(`cannot mount at ${mountpoint}: ${(e as Error).message}`);
  }
  await setNamespaces();
  await widenReadahead(mountpoint);
  view.onSnapshotsChanged(() => {
    if (!session) return;
    fuse.invalidate(session);
    void setNamespaces();
  });
  // New snapshots show up without a call reaching JS: the list is read again on a timer. After a
  // burst of folder loads or data reads, the memory malloc then holds free goes back to the system.
  let busy = 0;
  const timer = setInterval(() => {
    void view.refresh().catch(() => {});
    const stats = session && fuse.stats(session);
    const now = stats ? stats.jsLoad + stats.jsRead + stats.opened : 0;
    if (now !== busy) fuse.trim();
    busy = now;
  }, opts.refreshMs ?? 1000);
  timer.unref();
  void closed.then(() => clearInterval(timer));

  return {
    closed,
    stats: () => (session ? fuse.stats(session) : undefined),
    async unmount() {
      if (session) fuse.unmount(session);
      await Promise.race([closed, new Promise((r) => setTimeout(r, UNMOUNT_WAIT_MS).unref())]);
    },
  };
}
