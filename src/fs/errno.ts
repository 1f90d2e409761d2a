/** The one table from failures to errno codes for the FUSE adapter (positive, as C replies them). */
import { isStrataError, type ErrorCode } from '../store/errors.js';

export const Errno = {
  EPERM: 1, ENOENT: 2, EIO: 5, EACCES: 13, ENOTDIR: 20, EISDIR: 21, EINVAL: 22, EROFS: 30, ERANGE: 34,
  ENODATA: 61, ENOTSUP: 95,
} as const;

/** A failure the virtual tree reports on purpose (not found, not a folder, …). */
export class FsError extends Error {
  constructor(readonly errno: number, message: string) {
    super(message);
  }
}

const byCode: Partial<Record<ErrorCode, number>> = {
  NOT_FOUND: Errno.ENOENT,
  CORRUPT: Errno.EIO,
  UNSAFE_PATH: Errno.EIO,
  BACKEND: Errno.EIO,
  WRONG_PASSWORD: Errno.EACCES,
};

export function errnoOf(e: unknown): number {
  if (e instanceof FsError) return e.errno;
  if (isStrataError(e)) return byCode[e.code] ?? Errno.EIO;
  return Errno.EIO;
}
