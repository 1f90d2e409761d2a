/**
 * Parity: every pack has Reed–Solomon parity in `parity/<xx>/<pack id>`, so that
 * bit rot and a cut-off tail heal instead of losing what the pack holds.
 *
 * The pack is cut into at most MAX_SHARDS shards of S bytes (S a multiple of 64, at
 * least 256; the last one zero-padded). Shard i belongs to stripe i mod G, G = ceil(shards /
 * DATA_SHARDS), so a lost tail spreads over every stripe; each stripe has m parity
 * shards (the repository's `parity` setting; 2 by default, 6.25 % of the pack) and
 * gives back any m of its shards. A CRC-32C of every shard, data and parity,
 * tells which are damaged. The parity object: a header, those hashes, the parity
 * shards, then the SHA-256 of all that (damaged parity is known as such).
 *
 * The parity is computed from the sealed bytes and reveals nothing more than they
 * do; what healing gives back must still hash to the pack's name, so damaged or
 * forged parity can never make Strata accept wrong bytes.
 */
import { createHash } from 'node:crypto';
import { errors, isStrataError } from './errors.js';
import { native } from '../native.js';

/** Data shards per stripe (at most). */
export const DATA_SHARDS = 32;
const MAX_SHARDS = 128;
const ALIGN = 64;
/** Below this, a shard's hash would cost more than its parity saves. */
const MIN_SHARD = 256;
/** A CRC-32C: enough to tell the damaged shards, as what healing gives back is still checked against the pack's name. */
const HASH_BYTES = 4;
/** Version 1 had 8 bytes of SHA-256 per shard (its objects count as damaged parity, and check writes them anew). */
const FORMAT = 2;
const MAGIC = 'SPAR';
const HEADER_BYTES = 4 + 1 + 1 + 2 + 4 + 8;
const SUM_BYTES = 32;

export const parityObjectName = (packId: string): string => `parity/${packId.slice(0, 2)}/${packId}`;
export const packIdOfParity = (name: string): string => name.slice(name.lastIndexOf('/') + 1);

/** The parity shards per stripe for a setting in percent of the pack (0: none). */
export const parityShardsFor = (percent: number): number => Math.min(DATA_SHARDS, Math.max(0, Math.round((percent / 100) * DATA_SHARDS)));

interface Layout {
  size: number;
  shardSize: number;
  shards: number;
  stripes: number;
  parity: number;
}

function layoutFor(size: number, parity: number): Layout {
  const shardSize = Math.max(MIN_SHARD, Math.ceil(Math.ceil(size / MAX_SHARDS) / ALIGN) * ALIGN);
  const shards = Math.max(1, Math.ceil(size / shardSize));
  return { size, shardSize, shards, stripes: Math.ceil(shards / DATA_SHARDS), parity };
}

/** The data shards of stripe g, in order. */
function shardsOf(layout: Layout, g: number): number[] {
  const out = [];
  for (let s = g; s < layout.shards; s += layout.stripes) out.push(s);
  return out;
}

const shardHash = (bytes: Uint8Array): Buffer => {
  const hash = Buffer.alloc(HASH_BYTES);
  hash.writeUInt32LE(native.crc32c(bytes));
  return hash;
};

const run = (f: (cb: (err: Error | undefined) => void) => void): Promise<void> =>
  new Promise((resolve, reject) => f((err) => (err ? reject(err) : resolve())));

/** A stripe buffer: its data shards copied out of the pack (zero past its end), parity room after them. */
function stripeOf(layout: Layout, pack: Uint8Array, data: number[]): Buffer {
  const { shardSize } = layout;
  const stripe = Buffer.alloc((data.length + layout.parity) * shardSize);
  data.forEach((s, i) => stripe.set(pack.subarray(s * shardSize, Math.min((s + 1) * shardSize, pack.length)), i * shardSize));
  return stripe;
}

/** The parity object of a pack (whole, as saved), with `parity` shards per stripe; computed off the JS thread. */
export async function encodeParity(pack: Buffer, parity: number): Promise<Buffer> {
  const layout = layoutFor(pack.length, parity);
  const { shardSize, shards, stripes } = layout;
  const header = Buffer.alloc(HEADER_BYTES);
  header.write(MAGIC, 0, 'latin1');
  header.writeUInt8(FORMAT, 4);
  header.writeUInt8(parity, 5);
  header.writeUInt32LE(shardSize, 8);
  header.writeBigUInt64LE(BigInt(pack.length), 12);
  // Hashes then parity shards, as the object holds them: rs_pack_parity (native/rs.c) lays them out as shardsOf does.
  const body = Buffer.alloc((shards + stripes * parity) * HASH_BYTES + stripes * parity * shardSize);
  await run((cb) => native.rsPackParity(pack, shardSize, stripes, parity, body, cb));
  const object = Buffer.concat([header, body, Buffer.alloc(SUM_BYTES)]);
  createHash('sha256').update(object.subarray(0, object.length - SUM_BYTES)).digest().copy(object, object.length - SUM_BYTES);
  return object;
}

interface ParsedParity {
  layout: Layout;
  hashes: Buffer;
  /** Stripe g's parity shards, one after another. */
  parityOf(g: number): Buffer;
}

function parseParity(object: Buffer, packId: string): ParsedParity {
  const what = `parity of pack ${packId}`;
  if (object.length < HEADER_BYTES + SUM_BYTES) throw errors.corrupt(`${what} is truncated`);
  const body = object.subarray(0, object.length - SUM_BYTES);
  if (!createHash('sha256').update(body).digest().equals(object.subarray(body.length))) throw errors.corrupt(`${what} is damaged (its checksum does not match)`);
  if (body.toString('latin1', 0, 4) !== MAGIC || body.readUInt8(4) !== FORMAT) throw errors.corrupt(`${what} is of an unknown format`);
  const layout = layoutFor(Number(body.readBigUInt64LE(12)), body.readUInt8(5));
  const hashCount = layout.shards + layout.stripes * layout.parity;
  const stripeParity = layout.parity * layout.shardSize;
  if (layout.shardSize !== body.readUInt32LE(8) || layout.parity < 1
    || body.length !== HEADER_BYTES + hashCount * HASH_BYTES + layout.stripes * stripeParity) {
    throw errors.corrupt(`${what} does not add up (its layout and its length disagree)`);
  }
  const hashes = body.subarray(HEADER_BYTES, HEADER_BYTES + hashCount * HASH_BYTES);
  const paritiesAt = HEADER_BYTES + hashCount * HASH_BYTES;
  return { layout, hashes, parityOf: (g) => body.subarray(paritiesAt + g * stripeParity, paritiesAt + (g + 1) * stripeParity) };
}

export interface Healed {
  /** The pack's bytes, whole again (they hash to its name). */
  pack: Buffer;
  /** Data shards rebuilt, of `shards`. */
  shardsRebuilt: number;
  shards: number;
}

/**
 * Gives back a pack from what was read of it (damaged, cut short or too long) and its
 * parity object; CORRUPT when that cannot be done (more damage than parity, damaged parity).
 */
export async function healPack(read: Buffer, parityObject: Buffer, packId: string): Promise<Healed> {
  const { layout, hashes, parityOf } = parseParity(parityObject, packId);
  const { size, shardSize, shards, stripes, parity } = layout;
  const pack = Buffer.alloc(size);
  read.copy(pack, 0, 0, Math.min(read.length, size));
  const hashAt = (i: number): Buffer => hashes.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES);
  let shardsRebuilt = 0;
  for (let g = 0; g < stripes; g++) {
    const data = shardsOf(layout, g);
    const lost: number[] = [];
    data.forEach((s, i) => {
      const end = Math.min((s + 1) * shardSize, size);
      if (end > read.length || !shardHash(pack.subarray(s * shardSize, end)).equals(hashAt(s))) lost.push(i);
    });
    if (!lost.length) continue;
    const stripe = stripeOf(layout, pack, data);
    parityOf(g).copy(stripe, data.length * shardSize);
    for (let j = 0; j < parity; j++) {
      const at = (data.length + j) * shardSize;
      if (!shardHash(stripe.subarray(at, at + shardSize)).equals(hashAt(shards + g * parity + j))) lost.push(data.length + j);
    }
    try {
      await run((cb) => native.rsRebuild(stripe, data.length, parity, shardSize, Buffer.from(lost), cb));
    } catch (e) {
      throw errors.corrupt(`pack ${packId} cannot be healed: stripe ${g + 1} of ${stripes} ${(e as Error).message}`, { cause: e });
    }
    for (const i of lost) {
      if (i >= data.length) continue;
      const s = data[i]!;
      stripe.copy(pack, s * shardSize, i * shardSize, i * shardSize + Math.min(shardSize, size - s * shardSize));
      shardsRebuilt++;
    }
  }
  if (createHash('sha256').update(pack).digest('hex') !== packId) {
    throw errors.corrupt(`pack ${packId} cannot be healed: what its parity gives back does not hash to its name`);
  }
  return { pack, shardsRebuilt, shards };
}

/** Whether a parity object is intact and made for a pack of this size (check --read-data). */
export function parityProblem(parityObject: Buffer, packId: string, packSize: number): string | undefined {
  try {
    const { layout } = parseParity(parityObject, packId);
    return layout.size === packSize ? undefined : `parity of pack ${packId} is for a pack of ${layout.size} bytes, not ${packSize}`;
  } catch (e) {
    if (!isStrataError(e, 'CORRUPT')) throw e;
    return e.message;
  }
}
