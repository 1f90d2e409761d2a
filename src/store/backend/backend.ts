/**
 * The storage interface every repository lives on: flat object names with
 * slash-separated folders ("packs/ab/ab12…", "snapshots/…"). Implementations:
 * memory, local directory, S3, all held to test/store/backend-suite.ts.
 *
 * Contract:
 * - `save` is atomic and durable when it resolves: a reader sees the whole
 *   object or none of it, also after a crash. Saving an existing name replaces it.
 * - `load` of a missing object rejects with a NOT_FOUND StrataError; a range
 *   past the end is truncated to what exists.
 * - `list(prefix)` yields every object whose name starts with `prefix`, in no
 *   particular order, never half-written ones.
 * - `remove` of a missing object is not an error.
 */
export interface ObjectInfo {
  name: string;
  size: number;
}

export interface ByteRange {
  offset: number;
  length: number;
}

export interface Backend {
  /** Human-readable location, used in messages ("/srv/backup", "s3:bucket/prefix"). */
  readonly location: string;
  /** `data` may come in parts (a pack's blobs), written one after another without joining them first. */
  save(name: string, data: Uint8Array | readonly Uint8Array[]): Promise<void>;
  load(name: string, range?: ByteRange): Promise<Buffer>;
  stat(name: string): Promise<ObjectInfo>;
  list(prefix: string): AsyncIterable<ObjectInfo>;
  remove(name: string): Promise<void>;
  close(): Promise<void>;
  /** Makes the place a new repository goes (an S3 bucket); absent where the first save does that. */
  create?(): Promise<void>;
  /** The local file or folder that holds `name`, for readers that read it directly; absent where there is none. */
  localPath?(name: string): string | undefined;
  /**
   * Present where every object is written locked against removal for `lockDays` (S3 Object Lock);
   * `renew` extends the lock of every object to `lockDays` from now and returns how many it extended.
   */
  readonly protection?: { readonly lockDays: number; renew(): Promise<number> };
}

type Operations = Pick<Backend, 'save' | 'load' | 'stat' | 'list' | 'remove' | 'close'>;

/** A Backend that hands everything to `inner` except what `changed` replaces: the base of every Backend → Backend wrapper. */
export function wrapBackend(inner: Backend, changed: Partial<Operations>): Backend {
  return {
    location: inner.location,
    save: (name, data) => inner.save(name, data),
    load: (name, range) => inner.load(name, range),
    stat: (name) => inner.stat(name),
    list: (prefix) => inner.list(prefix),
    remove: (name) => inner.remove(name),
    close: () => inner.close(),
    ...(inner.create ? { create: () => inner.create!() } : {}),
    ...(inner.localPath ? { localPath: (name: string) => inner.localPath!(name) } : {}),
    ...(inner.protection ? { protection: inner.protection } : {}),
    ...changed,
  };
}

/** Throws a TypeError for names that could escape the backend's namespace. */
export function checkObjectName(name: string): void {
  if (!name || name.startsWith('/') || name.endsWith('/') || name.split('/').some((p) => p === '' || p === '.' || p === '..') || name.includes('\0')) {
    throw new TypeError(`invalid object name ${JSON.stringify(name)}`);
  }
}

export const partsOf = (data: Uint8Array | readonly Uint8Array[]): readonly Uint8Array[] => (data instanceof Uint8Array ? [data] : data);
