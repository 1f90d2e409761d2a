/**
 * The entry/tree model shared by capture, restore and the mount. A tree is one
 * directory: its entries sorted by name bytes. Names and link targets are byte
 * strings (Buffers) because a NAS holds names in any encoding.
 *
 * Names are validated on decode: a tree read from a repository can never carry
 * a name with `/`, NUL, `.` or `..` onto a local filesystem.
 */
import { errors } from '../errors.js';
import { decode, encode, Fields, skipValue } from './codec.js';
import { ID_BYTES } from './records.js';

export type EntryType = 'file' | 'dir' | 'symlink' | 'fifo' | 'chardev' | 'blockdev' | 'socket';
const ENTRY_TYPES: readonly EntryType[] = ['file', 'dir', 'symlink', 'fifo', 'chardev', 'blockdev', 'socket'];

/** The file-type bits of st_mode for each entry type (S_IFREG, S_IFDIR, …). */
const TYPE_MODE_BITS: Record<EntryType, number> = {
  file: 0o100000, dir: 0o040000, symlink: 0o120000, fifo: 0o010000, chardev: 0o020000, blockdev: 0o060000, socket: 0o140000,
};
const S_IFMT = 0o170000;

export const modeBitsOf = (type: EntryType): number => TYPE_MODE_BITS[type];
export const typeFromMode = (mode: number): EntryType | undefined =>
  ENTRY_TYPES.find((t) => TYPE_MODE_BITS[t] === (mode & S_IFMT));

/** Seconds and nanoseconds since the epoch. */
export type Timestamp = readonly [sec: number, nsec: number];

export interface Entry {
  name: Buffer;
  type: EntryType;
  /** Permission bits including setuid, setgid and sticky (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  user?: string;
  group?: string;
  size: number;
  mtime: Timestamp;
  atime: Timestamp;
  ctime: Timestamp;
  inode: number;
  device: number;
  links: number;
  /** Symlink target bytes. */
  target?: Buffer;
  /** Device number of character and block devices. */
  rdev?: number;
  /** Extended attributes sorted by name (ACLs are `system.posix_acl_*`). */
  xattrs?: [string, Buffer][];
  /** Data chunk ids of a file, in order. */
  chunks?: Buffer[];
  /** Tree id of a directory. */
  subtree?: Buffer;
  /** What a directory holds, all levels down (lets a capture reuse a subtree and still count it). */
  tally?: Tally;
  /** Allocated 512-byte blocks (st_blocks) when captured. */
  blocks?: number;
  /** The file had holes when captured; restore recreates them. */
  sparse?: boolean;
  /** A sparse file's data: sorted, disjoint [start, end) byte ranges; the rest are holes. */
  extents?: [number, number][];
  /** The file changed while it was read: its content may be torn. */
  inconsistent?: boolean;
}

export interface Tally {
  files: number;
  dirs: number;
  others: number;
  bytes: number;
}

const VERSION = 1;
const MAX_NAME_BYTES = 255;

/** The root of a snapshot (tree id `tree`) as a directory entry: where walks and lookups start. */
export function rootEntry(tree: Buffer): Entry {
  return {
    name: Buffer.from('/'), type: 'dir', mode: 0o755, uid: 0, gid: 0, size: 0, mtime: [0, 0], atime: [0, 0], ctime: [0, 0],
    inode: 0, device: 0, links: 1, subtree: tree,
  };
}

/** Why `name` is not a safe single path component, or undefined when it is. */
export function nameProblem(name: Uint8Array): string | undefined {
  if (name.length === 0) return 'an empty name';
  if (name.length > MAX_NAME_BYTES) return `a name of ${name.length} bytes`;
  if (name.includes(0x2f)) return 'a name with "/"';
  if (name.includes(0)) return 'a name with a NUL byte';
  if ((name.length === 1 && name[0] === 0x2e) || (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e)) {
    return 'a name "." or ".."';
  }
  return undefined;
}

export function compareNames(a: Entry, b: Entry): number {
  return Buffer.compare(a.name, b.name);
}

export function encodeTree(entries: readonly Entry[]): Buffer {
  return TreeBuilder.of(entries).encode();
}

/** `{ v: VERSION, entries: ` with the array's header left off: the entries' count comes when the tree is done. */
const TREE_PREFIX = (() => {
  const empty = encode({ v: VERSION, entries: [] });
  return empty.subarray(0, empty.length - 1); // the last byte is the empty array's header
})();

/** A MessagePack array header for `n` items. */
function arrayHeader(n: number): Buffer {
  if (n < 16) return Buffer.from([0x90 | n]);
  const h = Buffer.allocUnsafe(n < 0x10000 ? 3 : 5);
  if (n < 0x10000) {
    h[0] = 0xdc;
    h.writeUInt16BE(n, 1);
  } else {
    h[0] = 0xdd;
    h.writeUInt32BE(n, 1);
  }
  return h;
}

/**
 * A tree built one entry at a time. Each entry is kept encoded, its name and encoding
 * copied into one growing arena (a few hundred bytes an entry), not as an Entry object
 * with its arrays and Buffers (measured ~1.5 KB on the heap): a folder of 100,000 files
 * costs about its encoded tree while it is captured. `encode` gives exactly the bytes of
 * the tree record (MessagePack maps are encoded without context, so the entries'
 * encodings simply follow one another).
 */
export class TreeBuilder {
  private arena = Buffer.allocUnsafe(4096);
  private used = 0;
  /** Three numbers per entry: where its name starts and ends in the arena, and where its encoding ends (it follows the name). */
  private readonly spans: number[] = [];
  /** What the tree holds, all levels down. */
  readonly tally: Tally = { files: 0, dirs: 0, others: 0, bytes: 0 };

  static of(entries: readonly Entry[]): TreeBuilder {
    const tree = new TreeBuilder();
    for (const e of entries) tree.add(e);
    return tree;
  }

  add(e: Entry): void {
    const wire = encode(entryToWire(e));
    const start = this.used;
    this.append(e.name);
    this.append(wire);
    this.spans.push(start, start + e.name.length, this.used);
    const t = this.tally;
    if (e.type === 'file') {
      t.files++;
      t.bytes += e.size;
    } else if (e.type === 'dir') {
      t.dirs += 1 + (e.tally?.dirs ?? 0);
      t.files += e.tally?.files ?? 0;
      t.others += e.tally?.others ?? 0;
      t.bytes += e.tally?.bytes ?? 0;
    } else {
      t.others++;
    }
  }

  /** The tree record: entries sorted by name bytes. */
  encode(): Buffer {
    const { arena, spans } = this;
    const order = Array.from({ length: spans.length / 3 }, (_, i) => i * 3);
    order.sort((a, b) => arena.compare(arena, spans[b], spans[b + 1], spans[a], spans[a + 1]));
    return Buffer.concat([TREE_PREFIX, arrayHeader(order.length), ...order.map((i) => arena.subarray(spans[i + 1], spans[i + 2]))]);
  }

  private append(bytes: Uint8Array): void {
    if (this.used + bytes.length > this.arena.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.arena.length * 2, this.used + bytes.length));
      this.arena.copy(grown, 0, 0, this.used);
      this.arena = grown;
    }
    this.arena.set(bytes, this.used);
    this.used += bytes.length;
  }
}

function entryToWire(e: Entry): Record<string, unknown> {
  const wire: Record<string, unknown> = {
    name: e.name, type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, size: e.size,
    mtime: e.mtime, atime: e.atime, ctime: e.ctime, inode: e.inode, device: e.device, links: e.links,
  };
  if (e.user !== undefined) wire.user = e.user;
  if (e.group !== undefined) wire.group = e.group;
  if (e.target !== undefined) wire.target = e.target;
  if (e.rdev !== undefined) wire.rdev = e.rdev;
  if (e.xattrs?.length) wire.xattrs = e.xattrs;
  if (e.chunks !== undefined) wire.chunks = e.chunks;
  if (e.subtree !== undefined) wire.subtree = e.subtree;
  if (e.tally !== undefined) wire.tally = [e.tally.files, e.tally.dirs, e.tally.others, e.tally.bytes];
  if (e.blocks !== undefined) wire.blocks = e.blocks;
  if (e.sparse) wire.sparse = true;
  if (e.extents !== undefined) wire.extents = e.extents.flat();
  if (e.inconsistent) wire.inconsistent = true;
  return wire;
}

/**
 * A tree looked up by name without holding its entries as objects: the record's bytes and
 * where each entry lies in them, an entry decoded when asked for. Capture compares each
 * folder with the parent snapshot's through one of these, so a parent folder of 100,000
 * files costs its encoded bytes, not 100,000 Entry objects. Names and their order are
 * checked as in decodeTree when it is made; an entry's fields when it is asked for.
 */
export class TreeIndex {
  private constructor(
    private readonly data: Buffer,
    private readonly starts: Uint32Array,
    private readonly byName: Map<string, number>,
    private readonly what: string,
  ) {}

  static readonly empty = new TreeIndex(Buffer.alloc(0), new Uint32Array(1), new Map(), 'an empty tree');

  static decode(data: Buffer, what: string): TreeIndex {
    let bytes = data;
    let layout = entriesLayout(data);
    if (!layout) {
      // Every tree Strata writes is laid out so; anything else is decoded whole (and judged) first.
      bytes = encodeTree(decodeTree(data, what));
      layout = entriesLayout(bytes)!;
    }
    const n = layout.count;
    if (n > bytes.length - layout.first) throw errors.corrupt(`${what}: it says it holds more entries than it has bytes`);
    const starts = new Uint32Array(n + 1);
    const byName = new Map<string, number>();
    let pos = layout.first;
    let previous: Buffer | undefined;
    for (let i = 0; i < n; i++) {
      starts[i] = pos;
      pos = skipValue(bytes, pos, what);
      const name = Fields.of(decode(bytes.subarray(starts[i], pos), what), `${what} entry ${i}`).bytes('name');
      const problem = nameProblem(name);
      if (problem) throw errors.unsafePath(`${what} holds ${problem}: refusing to use it`);
      if (previous && Buffer.compare(previous, name) >= 0) throw errors.corrupt(`${what}: entries are not sorted or repeat a name`);
      previous = name;
      byName.set(name.toString('latin1'), i);
    }
    if (pos !== bytes.length) throw errors.corrupt(`${what}: bytes follow its entries`);
    starts[n] = pos;
    return new TreeIndex(bytes, starts, byName, what);
  }

  get(name: Buffer): Entry | undefined {
    const i = this.byName.get(name.toString('latin1'));
    if (i === undefined) return undefined;
    const raw = decode(this.data.subarray(this.starts[i], this.starts[i + 1]), this.what);
    return entryFromWire(Fields.of(raw, `${this.what} entry ${i}`));
  }
}

/** For a tree record laid out as Strata writes it (prefix, array header, entries): how many entries, and where the first starts. */
function entriesLayout(data: Buffer): { count: number; first: number } | undefined {
  if (data.length <= TREE_PREFIX.length || !data.subarray(0, TREE_PREFIX.length).equals(TREE_PREFIX)) return undefined;
  const at = TREE_PREFIX.length;
  const t = data[at];
  if (t >= 0x90 && t <= 0x9f) return { count: t & 0x0f, first: at + 1 };
  if (t === 0xdc && data.length >= at + 3) return { count: data.readUInt16BE(at + 1), first: at + 3 };
  if (t === 0xdd && data.length >= at + 5) return { count: data.readUInt32BE(at + 1), first: at + 5 };
  return undefined;
}

export function decodeTree(data: Uint8Array, what: string): Entry[] {
  const f = Fields.of(decode(data, what), what);
  f.version(VERSION);
  let previous: Buffer | undefined;
  return f.array('entries').map((raw, i) => {
    const entry = entryFromWire(Fields.of(raw, `${what} entry ${i}`));
    const problem = nameProblem(entry.name);
    if (problem) throw errors.unsafePath(`${what} holds ${problem}: refusing to use it`);
    if (previous && Buffer.compare(previous, entry.name) >= 0) {
      throw errors.corrupt(`${what}: entries are not sorted or repeat a name`);
    }
    previous = entry.name;
    return entry;
  });
}

function timestamp(f: Fields, field: string): Timestamp {
  const v = f.array(field);
  if (v.length !== 2 || !v.every((n) => typeof n === 'number' && Number.isInteger(n))) f.fail(field, 'a timestamp');
  return [v[0] as number, v[1] as number];
}

/** Extents are stored flat (start, end, start, end…); they must be sorted, disjoint and non-empty. */
function extentsFrom(f: Fields): [number, number][] {
  const flat = f.array('extents');
  const out: [number, number][] = [];
  let previousEnd = 0;
  for (let i = 0; i < flat.length; i += 2) {
    const [start, end] = [flat[i], flat[i + 1]];
    if (!Number.isInteger(start) || !Number.isInteger(end) || (start as number) < previousEnd || (end as number) <= (start as number)) {
      f.fail('extents', 'sorted, disjoint byte ranges');
    }
    out.push([start as number, end as number]);
    previousEnd = end as number;
  }
  return out;
}

function entryFromWire(f: Fields): Entry {
  const type = f.string('type') as EntryType;
  if (!ENTRY_TYPES.includes(type)) f.fail('type', 'an entry type');
  const e: Entry = {
    name: f.bytes('name'), type, mode: f.int('mode'), uid: f.int('uid'), gid: f.int('gid'), size: f.int('size'),
    mtime: timestamp(f, 'mtime'), atime: timestamp(f, 'atime'), ctime: timestamp(f, 'ctime'),
    inode: f.int('inode'), device: f.int('device'), links: f.int('links'),
  };
  if (f.has('user')) e.user = f.string('user');
  if (f.has('group')) e.group = f.string('group');
  if (f.has('target')) e.target = f.bytes('target');
  if (f.has('rdev')) e.rdev = f.int('rdev');
  if (f.has('xattrs')) {
    e.xattrs = f.array('xattrs').map((pair) => {
      if (!Array.isArray(pair) || typeof pair[0] !== 'string' || !(pair[1] instanceof Uint8Array)) f.fail('xattrs', 'name/value pairs');
      return [pair[0], Buffer.from(pair[1])] as [string, Buffer];
    });
  }
  if (f.has('chunks')) {
    e.chunks = f.array('chunks').map((c) => {
      if (!(c instanceof Uint8Array) || c.length !== ID_BYTES) f.fail('chunks', 'a list of chunk ids');
      return Buffer.from(c);
    });
  }
  if (f.has('subtree')) e.subtree = f.bytes('subtree', ID_BYTES);
  if (f.has('tally')) {
    const t = f.array('tally');
    if (t.length !== 4 || !t.every((n) => typeof n === 'number' && Number.isInteger(n) && n >= 0)) f.fail('tally', 'four counts');
    const [files, dirs, others, bytes] = t as number[];
    e.tally = { files, dirs, others, bytes };
  }
  if (type === 'file' && !e.chunks) f.fail('chunks', 'present on a file');
  if (type === 'dir' && !e.subtree) f.fail('subtree', 'present on a directory');
  if (type === 'symlink' && !e.target) f.fail('target', 'present on a symlink');
  if (f.has('blocks')) e.blocks = f.count('blocks');
  if (f.has('sparse')) e.sparse = f.bool('sparse');
  if (f.has('extents')) e.extents = extentsFrom(f);
  if (f.has('inconsistent')) e.inconsistent = f.bool('inconsistent');
  return e;
}
