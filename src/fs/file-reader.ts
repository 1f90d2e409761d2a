/**
 * Reading a stored file at any offset: offset → chunk by binary search over the
 * chunk table, chunks from a bounded cache shared by all open files, and the
 * next chunk fetched ahead for sequential readers. Reads return slices of the
 * cached chunks, so nothing is copied here.
 */
import type { Entry } from '../store/format/tree.js';
import type { BlobReader } from '../store/roles.js';
import { Errno, FsError } from './errno.js';
import { Lru } from '../store/lru.js';

interface CachedChunk {
  size: number;
  data: Promise<Buffer>;
}

/** Decrypted chunks by id, bounded in bytes. */
export class ChunkCache {
  private readonly chunks: Lru<string, CachedChunk>;
  constructor(private readonly source: BlobReader, limitBytes: number) {
    this.chunks = new Lru(limitBytes, (c) => c.size);
  }

  get(id: Buffer, size: number): Promise<Buffer> {
    const key = id.toString('hex');
    let cached = this.chunks.get(key);
    if (!cached) {
      cached = { size, data: this.source.loadBlob('data', id) };
      cached.data.catch(() => this.chunks.delete(key)); // damage is reported to each reader, not cached
      this.chunks.set(key, cached);
    }
    return cached.data;
  }
}

export class OpenFile {
  private offsets?: number[];
  constructor(readonly entry: Entry, private readonly source: BlobReader, private readonly cache: ChunkCache) {}

  /** Start offset of every chunk, plus the end. */
  private chunkOffsets(): number[] {
    if (!this.offsets) {
      const offsets = [0];
      for (const id of this.entry.chunks!) {
        const size = this.source.blobSize(id);
        if (size === undefined) throw new FsError(Errno.EIO, `chunk ${id.toString('hex')} is missing from the repository`);
        offsets.push(offsets.at(-1)! + size);
      }
      if (offsets.at(-1) !== this.entry.size) {
        throw new FsError(Errno.EIO, `its chunks hold ${offsets.at(-1)} bytes but the file has ${this.entry.size}`);
      }
      this.offsets = offsets;
    }
    return this.offsets;
  }

  private chunk(i: number): Promise<Buffer> {
    return this.cache.get(this.entry.chunks![i], this.offsets![i + 1] - this.offsets![i]);
  }

  /** Up to `length` bytes at `position`, as slices of cached chunks (empty past the end). */
  async read(position: number, length: number): Promise<Buffer[]> {
    const offsets = this.chunkOffsets();
    const end = Math.min(this.entry.size, position + length);
    if (position >= end) return [];
    let lo = 0;
    let hi = offsets.length - 2;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (offsets[mid] <= position) lo = mid;
      else hi = mid - 1;
    }
    const slices: Buffer[] = [];
    for (let i = lo; offsets[i] < end; i++) {
      const data = await this.chunk(i);
      slices.push(data.subarray(Math.max(position, offsets[i]) - offsets[i], Math.min(end, offsets[i + 1]) - offsets[i]));
      // Sequential readers get the next chunk fetched while they consume this one.
      if (offsets[i + 1] >= end && i + 1 < offsets.length - 1) void this.chunk(i + 1).catch(() => {});
    }
    return slices;
  }

  /** Copies up to `length` bytes at `position` into `into`; returns how many. */
  async readInto(into: Buffer, length: number, position: number): Promise<number> {
    let copied = 0;
    for (const slice of await this.read(position, length)) copied += slice.copy(into, copied);
    return copied;
  }
}
