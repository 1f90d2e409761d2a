/**
 * Packs: many sealed blobs followed by a sealed trailer that lists them, then
 * the trailer's length (u32 little-endian). A pack describes itself, so the
 * index can always be rebuilt from packs alone. A pack's name is the SHA-256
 * of its bytes: `check` verifies a pack by its name. Its parity (parity.ts) is saved
 * right after it.
 */
import type { Backend } from './backend/backend.js';
import { createHash } from 'node:crypto';
import type { Sealer } from './crypto.js';
import { errors } from './errors.js';
import { decodeTrailer, encodeTrailer, type BlobLocation, type BlobType } from './format/records.js';
import { encodeParity, parityObjectName } from './parity.js';

const LENGTH_BYTES = 4;
/** Most trailers fit: read this much of a pack's tail at once. */
const TAIL_GUESS = 64 * 1024;

export const packObjectName = (packId: string): string => `packs/${packId.slice(0, 2)}/${packId}`;
export const packIdFromName = (name: string): string => name.slice(name.lastIndexOf('/') + 1);

export interface SavedPack {
  id: string;
  size: number;
  blobs: BlobLocation[];
  /** The pack's parity being saved (after the pack): a caller need not wait for it before the next pack. */
  parity?: Promise<void>;
}

/** Collects sealed blobs of one type and saves them as packs of about `targetSize` bytes. */
export class PackWriter {
  private parts: Buffer[] = [];
  private blobs: BlobLocation[] = [];
  private size = 0;

  constructor(
    private readonly backend: Backend,
    private readonly sealer: Sealer,
    private readonly targetSize: number,
    /** Parity shards per stripe (parity.ts); 0: none. */
    private readonly parity: number,
  ) {}

  get pendingBytes(): number {
    return this.size;
  }

  get full(): boolean {
    return this.size >= this.targetSize;
  }

  get empty(): boolean {
    return this.blobs.length === 0;
  }

  add(type: BlobType, id: Buffer, sealed: Buffer[], rawLength: number, compressed: boolean): void {
    let length = 0;
    for (const part of sealed) {
      this.parts.push(part);
      length += part.length;
    }
    this.blobs.push({ type, id, offset: this.size, length, rawLength, compressed });
    this.size += length;
  }

  /** Takes what was collected and saves it as one pack; the writer starts empty again. */
  async save(): Promise<SavedPack> {
    const blobs = this.blobs;
    const trailer = this.sealer.seal(encodeTrailer(blobs));
    const trailerLength = trailer.reduce((n, p) => n + p.length, 0);
    const length = Buffer.alloc(LENGTH_BYTES);
    length.writeUInt32LE(trailerLength);
    const parts = [...this.parts, ...trailer, length];
    const size = this.size + trailerLength + LENGTH_BYTES;
    this.parts = [];
    this.blobs = [];
    this.size = 0;
    const hash = createHash('sha256');
    for (const part of parts) hash.update(part);
    const id = hash.digest('hex');
    // Parity is computed in the thread pool while the pack is written, and saved after it: parity without its
    // pack would be an orphan, while a pack without parity (a kill between) is mended by check --read-data.
    const encoded = this.parity ? encodeParity(Buffer.concat(parts, size), this.parity) : undefined;
    encoded?.catch(() => {}); // its failure is met by the parity save below, once the pack is saved
    await this.backend.save(packObjectName(id), parts);
    const parity = encoded?.then((object) => this.backend.save(parityObjectName(id), object));
    return { id, size, blobs, ...(parity ? { parity } : {}) };
  }
}

/** Reads the trailer of a pack: the list of its blobs. Damage is CORRUPT naming the pack. */
export async function readPackTrailer(backend: Backend, packId: string, sealer: Sealer): Promise<BlobLocation[]> {
  const name = packObjectName(packId);
  const { size } = await backend.stat(name);
  const tailLength = Math.min(size, TAIL_GUESS);
  let tail = await backend.load(name, { offset: size - tailLength, length: tailLength });
  if (tail.length !== tailLength) throw errors.corrupt(`pack ${packId} is shorter than its listed size`);
  const trailerLength = trailerLengthOf(tail, size, packId);
  if (trailerLength + LENGTH_BYTES > tailLength) {
    tail = await backend.load(name, { offset: size - LENGTH_BYTES - trailerLength, length: trailerLength + LENGTH_BYTES });
  }
  return blobsOfTrailer(tail, trailerLength, size, packId, sealer);
}

/** The trailer of a pack read whole (check --read-data). */
export function parsePackTrailer(pack: Buffer, packId: string, sealer: Sealer): BlobLocation[] {
  return blobsOfTrailer(pack, trailerLengthOf(pack, pack.length, packId), pack.length, packId, sealer);
}

/** The trailer's length from the last bytes of a pack of `size` bytes (`tail` ends where the pack ends). */
function trailerLengthOf(tail: Buffer, size: number, packId: string): number {
  if (size < LENGTH_BYTES) throw errors.corrupt(`pack ${packId} is truncated (${size} bytes)`);
  const trailerLength = tail.readUInt32LE(tail.length - LENGTH_BYTES);
  if (trailerLength + LENGTH_BYTES > size) throw errors.corrupt(`pack ${packId} is truncated or its trailer length is damaged`);
  return trailerLength;
}

function blobsOfTrailer(tail: Buffer, trailerLength: number, size: number, packId: string, sealer: Sealer): BlobLocation[] {
  const what = `pack ${packId}`;
  const sealed = tail.subarray(tail.length - LENGTH_BYTES - trailerLength, tail.length - LENGTH_BYTES);
  const blobs = decodeTrailer(sealer.open(sealed, `trailer of ${what}`), `trailer of ${what}`);
  const dataEnd = size - LENGTH_BYTES - trailerLength;
  for (const b of blobs) {
    if (b.offset + b.length > dataEnd) throw errors.corrupt(`${what}: its trailer lists a blob beyond the pack's data`);
  }
  return blobs;
}
