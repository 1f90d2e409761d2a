/**
 * The thin FUSE adapter: maps fuse-native calls onto the SnapshotView and
 * failures onto errno (errno.ts). Everything is read-only: every call that
 * would change something answers EROFS.
 */
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { createRequire } from 'node:module';
import { errors } from '../store/errors.js';
import { Errno, errnoOf, FsError } from './errno.js';
import type { OpenFile, SnapshotView } from './vtree.js';

const require = createRequire(import.meta.url);

type Callback = (code: number, ...values: unknown[]) => void;

interface FuseInstance {
  mount(cb: (err?: Error) => void): void;
  unmount(cb: (err?: Error) => void): void;
  _fuseOptions(): string;
}

export interface MountOptions {
  /** Let other users (and Samba) in; the kernel then enforces the stored modes and owners. */
  allowOther?: boolean;
  /** Seconds the kernel may keep names and attributes (new snapshots show up after at most this). */
  cacheSeconds?: number;
  /** Told about every failed read, with the path and the reason (damaged chunk, missing pack…). */
  onError?: (path: string, message: string) => void;
}

export interface Mounted {
  unmount(): Promise<void>;
}

const O_ACCMODE = 3;

/** Checks the mount point and recovers one left stale by a crashed mount. */
async function prepareMountpoint(mountpoint: string): Promise<void> {
  try {
    const st = await fs.stat(mountpoint);
    if (!st.isDirectory()) throw errors.usage(`${mountpoint} is not a folder`);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw errors.usage(`the mount point ${mountpoint} does not exist: create it first (mkdir -p ${mountpoint})`);
    if (code === 'ENOTCONN') {
      // A mount whose process died: the kernel still holds it. Detach it and go on.
      try {
        execFileSync('umount', ['-l', mountpoint], { stdio: 'ignore' });
      } catch {
        throw errors.usage(`${mountpoint} is left over from a mount that crashed: run \`fusermount -u ${mountpoint}\` (or \`umount -l ${mountpoint}\` as root)`);
      }
      return;
    }
    throw e;
  }
  const mounts = await fs.readFile('/proc/self/mounts', 'utf8').catch(() => '');
  const escaped = mountpoint.replace(/ /g, '\\040');
  if (mounts.split('\n').some((line) => line.split(' ')[1] === escaped)) {
    throw errors.usage(`${mountpoint} is busy: something is already mounted there (unmount it first)`);
  }
  if ((await fs.readdir(mountpoint)).length > 0) throw errors.usage(`${mountpoint} is not empty: mount on an empty folder`);
}

export async function mountView(view: SnapshotView, mountpoint: string, opts: MountOptions = {}): Promise<Mounted> {
  await prepareMountpoint(mountpoint);
  const Fuse = require('fuse-native');
  const files = new Map<number, OpenFile>();
  let nextFd = 10;
  const report = (path: string, e: unknown): number => {
    const errno = errnoOf(e);
    if (errno === Errno.EIO) opts.onError?.(path, (e as Error).message);
    return errno;
  };
  /** Runs a view call and answers FUSE with its result or the errno of its failure. */
  const answer = <T>(path: string, cb: Callback, work: () => Promise<T>, ok: (v: T) => unknown[] = (v) => [v]): void => {
    work().then((v) => cb(0, ...ok(v)), (e) => cb(report(path, e)));
  };
  const readOnly = (...args: unknown[]): void => (args.at(-1) as Callback)(Errno.EROFS);

  const ops = {
    getattr: (path: string, cb: Callback) => answer(path, cb, () => view.getattr(path)),
    readdir: (path: string, cb: Callback) => answer(path, cb, () => view.readdir(path)),
    readlink: (path: string, cb: Callback) => answer(path, cb, () => view.readlink(path)),
    open: (path: string, flags: number, cb: Callback) => {
      if ((flags & O_ACCMODE) !== 0) return cb(Errno.EROFS);
      answer(path, cb, () => view.openFile(path), (file) => {
        const fd = nextFd++;
        files.set(fd, file);
        return [fd];
      });
    },
    read: (path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void) => {
      const file = files.get(fd);
      if (!file) return cb(Errno.EIO);
      file.read(buf, len, pos).then(cb, (e) => cb(report(path, e)));
    },
    release: (_path: string, fd: number, cb: Callback) => {
      files.delete(fd);
      cb(0);
    },
    listxattr: (path: string, cb: Callback) => answer(path, cb, () => view.xattrs(path), (x) => [x.map(([name]) => name)]),
    getxattr: (path: string, name: string, _position: number, cb: Callback) => answer(path, cb, async () => {
      const found = (await view.xattrs(path)).find(([n]) => n === name);
      if (!found) throw new FsError(Errno.ENODATA, `${path} has no attribute ${name}`);
      return found[1];
    }),
    statfs: (_path: string, cb: Callback) => cb(0, {
      bsize: 4096, frsize: 4096, blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0, favail: 0, fsid: 0x5354, flag: 1, namemax: 255,
    }),
    create: readOnly, write: readOnly, truncate: readOnly, ftruncate: readOnly, unlink: readOnly, rename: readOnly,
    link: readOnly, symlink: readOnly, mkdir: readOnly, rmdir: readOnly, chmod: readOnly, chown: readOnly,
    utimens: readOnly, setxattr: readOnly, removexattr: readOnly, mknod: readOnly,
  };
  const cache = opts.cacheSeconds ?? 2;
  const fuse: FuseInstance = new Fuse(mountpoint, ops, {
    fsname: 'strata', subtype: 'strata', kernelCache: true, entryTimeout: cache, attrTimeout: cache,
    allowOther: !!opts.allowOther, defaultPermissions: !!opts.allowOther, timeout: false,
  });
  // fuse-native has no switch for these: stored inode numbers, and a read-only mount.
  const options = fuse._fuseOptions.bind(fuse);
  fuse._fuseOptions = () => {
    const base = options();
    return base ? `${base},use_ino,ro` : '-ouse_ino,ro';
  };
  await new Promise<void>((resolve, reject) => fuse.mount((err) => (err ? reject(errors.usage(`cannot mount at ${mountpoint}: ${err.message}`)) : resolve())));
  return {
    unmount: () => new Promise<void>((resolve, reject) => fuse.unmount((err) => (err ? reject(err) : resolve()))),
  };
}
