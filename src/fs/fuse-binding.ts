/**
 * The compiled libfuse 3 binding in native/ (fuse_*.c): C owns the session, its
 * threads and the inode table, and calls JS only with jobs: a folder to load, file
 * data to read (when C does not read it itself), a failure to log, the end of the session.
 */
import { createRequire } from 'node:module';

export const JOB_LOAD = 1;
export const JOB_READ = 2;
export const JOB_CLOSED = 3;
export const JOB_LOG = 4;

export type Session = { readonly __session: unique symbol };

/** File data read in C from the packs of a local repository. */
export interface DirectOptions {
  packRoot: string;
  encryption: Buffer | null;
  id: Buffer;
  cacheBytes?: number;
}

export interface FuseStats {
  lookup: number; forget: number; getattr: number; readlink: number; open: number; read: number; opendir: number;
  readdir: number; readdirplus: number; statfs: number; getxattr: number; listxattr: number; lseek: number; other: number;
  /** Jobs that reached JS: folders loaded, reads served. */
  jsLoad: number; jsRead: number;
  /** Calls that waited for a folder to load. */
  waited: number;
  /** Files read ahead of a reader and pushed into the page cache. */
  pushed: number;
  /** Bytes pushed into the kernel's page cache ahead of reads. */
  storedBytes: number;
  /** Chunks read from packs and opened in C, and their bytes. */
  opened: number; openedBytes: number;
  nodes: number; foldersLoaded: number; tableBytes: number;
}

export interface FuseBinding {
  mount(mountpoint: string, rootBatch: Buffer, options: { allowOther: boolean; maxThreads?: number; tableBytes?: number; direct?: DirectOptions },
    onJob: (kind: number, id: number, ref: Buffer, index: number, offset: number, size: number, nodeid: number) => void): Session;
  loadDone(session: Session, id: number, batch: Buffer): void;
  loadFailed(session: Session, id: number, errno: number): void;
  readDone(session: Session, id: number, data: Buffer[]): void;
  readFailed(session: Session, id: number, errno: number): void;
  invalidate(session: Session): void;
  setNamespaces(session: Session, security: boolean, system: boolean): void;
  stats(session: Session): FuseStats | undefined;
  pathOf(session: Session, nodeid: number): Buffer | undefined;
  unmount(session: Session): void;
  /** Hands back to the system the memory malloc holds free (malloc_trim). */
  trim(): void;
}

const require = createRequire(import.meta.url);

export function fuseBinding(): FuseBinding {
  try {
    return require('../../native/build/Release/strata_fuse.node') as FuseBinding;
  } catch (cause) {
    throw new Error('the FUSE binding is not built: run `bash scripts/setup.sh` (it needs libfuse3-dev)', { cause });
  }
}
