/**
 * Reading snapshots as trees: resolve a path, walk a subtree, stream a file's
 * bytes, compare two trees. Used by restore, ls, dump, diff (and the mount).
 */
import { errors } from '../store/errors.js';
import { rootEntry, type Entry } from '../store/format/tree.js';
import type { BlobReader, TreeReader } from '../store/roles.js';

export type Reader = TreeReader & BlobReader;

/** Splits "/srv/share/a" into byte-string components; ".." is refused. */
export function splitPath(p: string | Buffer): Buffer[] {
  const parts: Buffer[] = [];
  const bytes = typeof p === 'string' ? Buffer.from(p) : p;
  let start = 0;
  for (let i = 0; i <= bytes.length; i++) {
    if (i === bytes.length || bytes[i] === 0x2f) {
      const part = bytes.subarray(start, i);
      if (part.length === 2 && part[0] === 0x2e && part[1] === 0x2e) throw errors.usage(`".." is not allowed in a snapshot path: ${p}`);
      if (part.length && !(part.length === 1 && part[0] === 0x2e)) parts.push(part);
      start = i + 1;
    }
  }
  return parts;
}

/** The entry at `p` inside `tree`; NOT_FOUND naming the path when it does not exist. */
export async function resolvePath(reader: TreeReader, tree: Buffer, p: string | Buffer): Promise<Entry> {
  let entry = rootEntry(tree);
  for (const part of splitPath(p)) {
    if (entry.type !== 'dir') throw errors.notFound(`${p}: ${entry.name.toString()} is not a directory`);
    const found = (await reader.loadTree(entry.subtree!)).find((e) => e.name.equals(part));
    if (!found) throw errors.notFound(`${p} does not exist in the snapshot`);
    entry = found;
  }
  return entry;
}

export interface WalkItem {
  /** Path relative to the walk's start, as bytes ("a/b/c"). */
  path: Buffer;
  entry: Entry;
}

/** Every entry below `dir` (depth first, sorted), directories before their contents. */
export async function* walkTree(reader: TreeReader, dir: Entry, prefix: Buffer = Buffer.alloc(0)): AsyncIterable<WalkItem> {
  if (dir.type !== 'dir') return;
  for (const entry of await reader.loadTree(dir.subtree!)) {
    const p = prefix.length ? Buffer.concat([prefix, Buffer.from('/'), entry.name]) : entry.name;
    yield { path: p, entry };
    if (entry.type === 'dir') yield* walkTree(reader, entry, p);
  }
}

/** A file's content chunk by chunk, loading the next chunk while the current one is consumed. */
export async function* fileChunks(reader: BlobReader, entry: Entry): AsyncIterable<Buffer> {
  const chunks = entry.chunks ?? [];
  let next = chunks.length ? reader.loadBlob('data', chunks[0]) : undefined;
  for (let i = 0; i < chunks.length; i++) {
    const current = await next!;
    next = i + 1 < chunks.length ? reader.loadBlob('data', chunks[i + 1]) : undefined;
    next?.catch(() => {}); // surfaced when awaited
    yield current;
  }
}

export type Change = '+' | '-' | 'M' | 'T';

/** Differences between two trees: added, removed, modified content or metadata, type changed. */
export async function* diffTrees(reader: TreeReader, a: Buffer | undefined, b: Buffer | undefined, prefix = ''): AsyncIterable<{ change: Change; path: string; entry: Entry }> {
  if (a && b && a.equals(b)) return;
  const left = a ? await reader.loadTree(a) : [];
  const right = b ? await reader.loadTree(b) : [];
  let i = 0;
  let j = 0;
  while (i < left.length || j < right.length) {
    const cmp = i >= left.length ? 1 : j >= right.length ? -1 : Buffer.compare(left[i].name, right[j].name);
    const entry = cmp <= 0 ? left[i] : right[j];
    const p = `${prefix}/${entry.name.toString()}`;
    if (cmp < 0) {
      yield { change: '-', path: p, entry };
      if (entry.type === 'dir') yield* diffTrees(reader, entry.subtree, undefined, p);
      i++;
    } else if (cmp > 0) {
      yield { change: '+', path: p, entry };
      if (entry.type === 'dir') yield* diffTrees(reader, undefined, entry.subtree, p);
      j++;
    } else {
      const [x, y] = [left[i], right[j]];
      if (x.type !== y.type) {
        yield { change: 'T', path: p, entry: y };
      } else if (x.type === 'dir') {
        yield* diffTrees(reader, x.subtree, y.subtree, p);
      } else if (!sameContent(x, y) || x.mode !== y.mode || x.uid !== y.uid || x.gid !== y.gid) {
        yield { change: 'M', path: p, entry: y };
      }
      i++;
      j++;
    }
  }
}

function sameContent(x: Entry, y: Entry): boolean {
  const chunksX = x.chunks ?? [];
  const chunksY = y.chunks ?? [];
  return x.size === y.size && chunksX.length === chunksY.length && chunksX.every((c, k) => c.equals(chunksY[k])) &&
    (x.target ?? Buffer.alloc(0)).equals(y.target ?? Buffer.alloc(0)) && x.rdev === y.rdev;
}
