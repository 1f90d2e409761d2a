/** Seeded pseudo-random numbers (xoshiro128**): fixtures are generated, never committed. */
import { createCipheriv } from 'node:crypto';
export class Random {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    this.a = seed >>> 0 || 1;
    this.b = 0x9e3779b9;
    this.c = 0x243f6a88;
    this.d = 0xb7e15162;
    for (let i = 0; i < 16; i++) this.next();
  }

  /** A uniform 32-bit unsigned integer (xoshiro128**). */
  next(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result;
  }

  int(max: number): number {
    return this.next() % max;
  }

  bytes(n: number): Buffer {
    const buf = Buffer.allocUnsafe(n);
    let i = 0;
    for (; i + 4 <= n; i += 4) buf.writeUInt32LE(this.next(), i);
    for (; i < n; i++) buf[i] = this.next() & 0xff;
    return buf;
  }

  /** Compressible text-like bytes: words from a small vocabulary. */
  text(n: number): Buffer {
    const words = ['backup', 'share', 'folder', 'version', 'the', 'of', 'snapshot', 'data', 'NAS', 'file', '\n', 'report', '2026'];
    const parts: string[] = [];
    let size = 0;
    while (size < n) {
      const w = words[this.int(words.length)];
      parts.push(w, ' ');
      size += w.length + 1;
    }
    return Buffer.from(parts.join('')).subarray(0, n);
  }
}

const rotl = (x: number, k: number): number => ((x << k) | (x >>> (32 - k))) >>> 0;

/** Many seeded incompressible bytes, fast (AES-CTR keystream keyed by the seed). */
export function randomStream(seed: number, n: number): Buffer {
  const key = Buffer.alloc(16);
  key.writeUInt32LE(seed >>> 0);
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(n));
}
