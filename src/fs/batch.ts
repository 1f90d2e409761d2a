/**
 * The packed form in which a folder's listing goes to the C inode table (documented
 * in native/fuse_table.h; with each file's chunk records for the data path in C,
 * native/fuse_data.h, when C reads data itself), and the refs the table hands back
 * in jobs: opaque bytes to C, a DirRef or FileRef here.
 *
 *   'T' tree id (32) scope (8)             a stored folder
 *   'V' path parts joined by "/"           a virtual folder
 *   'E' tree id (32) scope (8) index (u32) a stored file shown outside its folder (history)
 *
 * A file inside a stored folder carries no ref: it is found by its folder's ref and
 * its position in the folder, which the table gives with every read.
 */
import type { BlobLocation } from '../store/roles.js';
import { Errno, FsError } from './errno.js';
import type { DirRef, FileRef, ViewEntry } from './vtree.js';

const MAGIC = 0x42525453;
const HEADER = 16;
const RECORD = 152;
const FLAG_VOLATILE = 1;
const FLAG_SPARSE = 2;
const FLAG_UNREADABLE = 4;
const CHUNK_RECORD = 88;
const REF_TREE = 0x54;
const REF_VIRTUAL = 0x56;
const REF_ENTRY = 0x45;
const ID = 32;
const SCOPE = 8;

const SLASH = Buffer.from('/');

export function encodeDirRef(dir: DirRef): Buffer {
  if (dir.kind === 'tree') return Buffer.concat([Buffer.of(REF_TREE), dir.tree, dir.scope]);
  const parts: Buffer[] = [Buffer.of(REF_VIRTUAL)];
  dir.path.forEach((p, i) => parts.push(...(i ? [SLASH, p] : [p])));
  return Buffer.concat(parts);
}

function encodeFileRef(file: FileRef): Buffer {
  const out = Buffer.alloc(1 + ID + SCOPE + 4);
  out[0] = REF_ENTRY;
  file.tree.copy(out, 1);
  file.scope.copy(out, 1 + ID);
  out.writeUInt32LE(file.index, 1 + ID + SCOPE);
  return out;
}

export function decodeDirRef(ref: Buffer): DirRef {
  if (ref[0] === REF_TREE && ref.length === 1 + ID + SCOPE) {
    return { kind: 'tree', tree: Buffer.from(ref.subarray(1, 1 + ID)), scope: Buffer.from(ref.subarray(1 + ID)) };
  }
  if (ref[0] === REF_VIRTUAL) {
    const path: Buffer[] = [];
    for (let start = 1, i = 1; i <= ref.length; i++) {
      if (i === ref.length || ref[i] === 0x2f) {
        if (i > start) path.push(Buffer.from(ref.subarray(start, i)));
        start = i + 1;
      }
    }
    return { kind: 'virtual', path };
  }
  throw new FsError(Errno.EIO, `not a folder ref: ${ref.toString('hex')}`);
}

/** The file a read names: its own ref, or its folder's ref and its position there. */
export function decodeFileRef(ref: Buffer, index: number): FileRef {
  if (ref[0] === REF_ENTRY && ref.length === 1 + ID + SCOPE + 4) {
    return { tree: Buffer.from(ref.subarray(1, 1 + ID)), scope: Buffer.from(ref.subarray(1 + ID, 1 + ID + SCOPE)), index: ref.readUInt32LE(1 + ID + SCOPE) };
  }
  const dir = decodeDirRef(ref);
  if (dir.kind !== 'tree') throw new FsError(Errno.EIO, `not a file ref: ${ref.toString('hex')}`);
  return { tree: dir.tree, scope: dir.scope, index };
}

function writeU64(buf: Buffer, at: number, v: number): void {
  buf.writeUInt32LE(v % 0x1_0000_0000, at);
  buf.writeUInt32LE(Math.floor(v / 0x1_0000_0000), at + 4);
}

function writeI64(buf: Buffer, at: number, v: number): void {
  if (v >= 0) writeU64(buf, at, v);
  else buf.writeBigInt64LE(BigInt(v), at);
}

interface Heap {
  name: Buffer;
  target?: Buffer;
  xattrs?: Buffer;
  ref?: Buffer;
  extents?: Buffer;
  /** Chunk records, or why the file cannot be read (then `unreadable`). */
  chunks?: Buffer;
  unreadable?: boolean;
}

/** Where a chunk lies, for the data path in C (undefined: the index does not know it). */
export type Locate = (id: Buffer) => BlobLocation | undefined;

function chunkRecords(chunks: Buffer[], locate: Locate): Pick<Heap, 'chunks' | 'unreadable'> {
  const out = Buffer.alloc(chunks.length * CHUNK_RECORD);
  for (const [i, id] of chunks.entries()) {
    const at = locate(id);
    if (!at) return { chunks: Buffer.from(`chunk ${id.toString('hex')} is missing from the repository`), unreadable: true };
    const r = i * CHUNK_RECORD;
    id.copy(out, r);
    out.write(at.pack, r + 32, 'hex');
    writeU64(out, r + 64, at.offset);
    out.writeUInt32LE(at.length, r + 72);
    out.writeUInt32LE(at.rawLength, r + 76);
    out.writeUInt32LE(at.compressed ? 1 : 0, r + 80);
  }
  return { chunks: out };
}

function xattrBytes(xattrs: [string, Buffer][]): Buffer | undefined {
  if (!xattrs.length) return undefined;
  const parts: Buffer[] = [];
  for (const [name, value] of xattrs) {
    const n = Buffer.from(name);
    const lengths = Buffer.alloc(8);
    lengths.writeUInt32LE(n.length, 0);
    lengths.writeUInt32LE(value.length, 4);
    parts.push(lengths, n, value);
  }
  return Buffer.concat(parts);
}

function extentBytes(extents: [number, number][]): Buffer {
  const out = Buffer.alloc(extents.length * 16);
  extents.forEach(([start, end], i) => {
    writeU64(out, i * 16, start);
    writeU64(out, i * 16 + 8, end);
  });
  return out;
}

/**
 * One folder's children (sorted by name bytes, as the view lists them) for the table;
 * `parent` is the folder. With `locate`, each file carries where its chunks lie.
 */
export function encodeBatch(entries: ViewEntry[], parent: DirRef | undefined, locate?: Locate): Buffer {
  const inStoredFolder = parent?.kind === 'tree';
  const heaps: Heap[] = entries.map((e) => ({
    name: e.name,
    target: e.target,
    xattrs: xattrBytes(e.xattrs),
    ref: e.dir ? encodeDirRef(e.dir) : e.file && !inStoredFolder ? encodeFileRef(e.file) : undefined,
    extents: e.extents ? extentBytes(e.extents) : undefined,
    ...(e.chunks && locate ? chunkRecords(e.chunks, locate) : {}),
  }));
  let heapBytes = 0;
  for (const h of heaps) {
    heapBytes += h.name.length + (h.target?.length ?? 0) + (h.xattrs?.length ?? 0) + (h.ref?.length ?? 0) + (h.extents?.length ?? 0) + (h.chunks?.length ?? 0);
  }
  const out = Buffer.alloc(HEADER + entries.length * RECORD + heapBytes);
  out.writeUInt32LE(MAGIC, 0);
  out.writeUInt32LE(entries.length, 4);
  out.writeUInt32LE(RECORD, 8);
  out.writeUInt32LE(heapBytes, 12);
  const heapStart = HEADER + entries.length * RECORD;
  let heapAt = 0;
  const put = (at: number, bytes: Buffer | undefined): void => {
    if (!bytes) return;
    out.writeUInt32LE(heapAt, at);
    out.writeUInt32LE(bytes.length, at + 4);
    bytes.copy(out, heapStart + heapAt);
    heapAt += bytes.length;
  };
  entries.forEach((e, i) => {
    const r = HEADER + i * RECORD;
    const a = e.attr;
    writeU64(out, r, a.size);
    writeU64(out, r + 8, a.blocks);
    writeU64(out, r + 16, a.rdev);
    writeI64(out, r + 24, a.atime[0]);
    writeI64(out, r + 32, a.mtime[0]);
    writeI64(out, r + 40, a.ctime[0]);
    out.writeUInt32LE(a.atime[1], r + 48);
    out.writeUInt32LE(a.mtime[1], r + 52);
    out.writeUInt32LE(a.ctime[1], r + 56);
    out.writeUInt32LE(a.mode, r + 60);
    out.writeUInt32LE(a.nlink, r + 64);
    out.writeUInt32LE(a.uid, r + 68);
    out.writeUInt32LE(a.gid, r + 72);
    const h = heaps[i];
    out.writeUInt32LE((e.volatile ? FLAG_VOLATILE : 0) | (e.extents ? FLAG_SPARSE : 0) | (h.unreadable ? FLAG_UNREADABLE : 0), r + 76);
    a.ino.scope.copy(out, r + 80, 0, SCOPE);
    writeU64(out, r + 88, a.ino.device);
    writeU64(out, r + 96, a.ino.inode);
    put(r + 104, h.name);
    put(r + 112, h.target);
    put(r + 120, h.xattrs);
    put(r + 128, h.ref);
    put(r + 136, h.extents);
    put(r + 144, h.chunks);
  });
  return out;
}
