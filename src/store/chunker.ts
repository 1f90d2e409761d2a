/**
 * Content-defined chunking: FastCDC with normalised chunking and a 32-bit gear
 * hash. The cut itself runs in C (native/strata_native.c, several times faster);
 * `cutTs` is its TypeScript twin, and the tests pin both to the same golden
 * boundaries for seeded input, so boundaries never change silently.
 */
import { createHash, randomBytes } from 'node:crypto';
import { native } from '../native.js';
import type { ChunkerParams } from './format/records.js';

const topBits = (n: number): number => (0xffffffff << (32 - n)) >>> 0;

/** ~1.4 MiB average chunks: few index entries per terabyte, still fine-grained dedup. */
export function defaultChunkerParams(seed: Buffer = randomBytes(32)): ChunkerParams {
  return { seed, minSize: 512 * 1024, normSize: 1024 * 1024, maxSize: 8 * 1024 * 1024, maskS: topBits(21), maskL: topBits(19) };
}

export function gearTable(seed: Buffer): Uint32Array {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    table[i] = createHash('sha256').update(seed).update(Uint8Array.of(i)).digest().readUInt32LE(0);
  }
  return table;
}

export type CutFunction = (buf: Uint8Array, start: number, end: number, eof: boolean) => number;

/**
 * Returns the cut function for `params`: the length of the chunk starting at
 * buf[start] within buf[start..end), or 0 when more data is needed (end is not
 * the end of the file and no cut was found before it).
 */
export function makeCutter(params: ChunkerParams, impl: 'native' | 'ts' = 'native'): CutFunction {
  const gear = gearTable(params.seed);
  const { minSize, normSize, maxSize, maskS, maskL } = params;
  if (impl === 'native') {
    return (buf, start, end, eof) => native.cdcCut(buf, start, end, eof, gear, minSize, normSize, maxSize, maskS, maskL);
  }
  return (buf, start, end, eof) => cutTs(buf, start, end, eof, gear, params);
}

export function cutTs(buf: Uint8Array, start: number, end: number, eof: boolean, gear: Uint32Array, p: ChunkerParams): number {
  const n = end - start;
  if (n <= p.minSize) return eof ? n : 0;
  const limit = Math.min(n, p.maxSize);
  const normal = Math.min(p.normSize, limit);
  let hash = 0;
  let i = p.minSize;
  for (; i < normal; i++) {
    hash = ((hash << 1) + gear[buf[start + i]]) >>> 0;
    if ((hash & p.maskS) === 0) return i + 1;
  }
  for (; i < limit; i++) {
    hash = ((hash << 1) + gear[buf[start + i]]) >>> 0;
    if ((hash & p.maskL) === 0) return i + 1;
  }
  return limit === p.maxSize || eof ? limit : 0;
}
