/**
 * The one place that touches msgpackr. Records are plain maps (no msgpackr
 * record extension), so the format stays readable by any MessagePack decoder.
 */
import { Packr } from 'msgpackr';
import { errors } from '../errors.js';

const packr = new Packr({ useRecords: false, variableMapSize: true, int64AsType: 'number', mapsAsObjects: true });

export const encode = (value: unknown): Buffer => packr.pack(value);

/** Decodes `data`; anything undecodable is CORRUPT naming `what`. */
export function decode(data: Uint8Array, what: string): unknown {
  try {
    return packr.unpack(data);
  } catch (cause) {
    throw errors.corrupt(`${what} cannot be decoded: ${(cause as Error).message}`, { cause });
  }
}

/**
 * Where the MessagePack value at `pos` ends, without decoding it: how a record's parts
 * are found so that only the ones asked for are decoded. CORRUPT naming `what` when the
 * bytes end first or hold a byte no encoder writes.
 */
export function skipValue(b: Buffer, pos: number, what: string): number {
  const broken = () => errors.corrupt(`${what} cannot be decoded: it ends inside a value`);
  for (let pending = 1; pending > 0; pending--) {
    if (pos >= b.length) throw broken();
    const t = b[pos++];
    if (t <= 0x7f || t >= 0xe0) continue; // fixints
    if (t <= 0x8f) pending += 2 * (t & 0x0f); // fixmap
    else if (t <= 0x9f) pending += t & 0x0f; // fixarray
    else if (t <= 0xbf) pos += t & 0x1f; // fixstr
    else if (pos + SIZE_BYTES[t - 0xc0] > b.length) throw broken();
    else {
      const size = SIZE_BYTES[t - 0xc0];
      const n = size === 1 ? b[pos] : size === 2 ? b.readUInt16BE(pos) : size === 4 ? b.readUInt32BE(pos) : 0;
      switch (t) {
        case 0xc1: throw errors.corrupt(`${what} cannot be decoded: it holds the unused byte 0xc1`);
        case 0xc4: case 0xc5: case 0xc6: case 0xd9: case 0xda: case 0xdb: pos += size + n; break; // bin, str
        case 0xc7: case 0xc8: case 0xc9: pos += size + 1 + n; break; // ext: length, type, data
        case 0xdc: case 0xdd: pos += size; pending += n; break; // array
        case 0xde: case 0xdf: pos += size; pending += 2 * n; break; // map
        default: pos += FIXED_BYTES[t - 0xc0]; // nil, booleans, numbers, fixext
      }
    }
  }
  if (pos > b.length) throw broken();
  return pos;
}

/** For 0xc0…0xdf: bytes of the length that follows the type byte (0 where there is none). */
const SIZE_BYTES = [0, 0, 0, 0, 1, 2, 4, 1, 2, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 4, 2, 4, 2, 4];
/** For 0xc0…0xdf: bytes of a fixed-size value after the type byte. */
const FIXED_BYTES = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 8, 1, 2, 4, 8, 1, 2, 4, 8, 2, 3, 5, 9, 17, 0, 0, 0, 0, 0, 0, 0];

/** Field readers that throw CORRUPT naming the record and field when a value has the wrong shape. */
export class Fields {
  constructor(private readonly record: Record<string, unknown>, private readonly what: string) {}

  static of(value: unknown, what: string): Fields {
    if (typeof value !== 'object' || value === null || Array.isArray(value) || Buffer.isBuffer(value)) {
      throw errors.corrupt(`${what} is not a record`);
    }
    return new Fields(value as Record<string, unknown>, what);
  }

  fail(field: string, expected: string): never {
    throw errors.corrupt(`${this.what}: field ${field} is not ${expected}`);
  }

  has(field: string): boolean {
    return this.record[field] !== undefined && this.record[field] !== null;
  }

  int(field: string): number {
    const v = this.record[field];
    if (typeof v !== 'number' || !Number.isInteger(v)) this.fail(field, 'an integer');
    return v;
  }

  /** A non-negative integer. */
  count(field: string): number {
    const v = this.int(field);
    if (v < 0) this.fail(field, 'a count');
    return v;
  }

  number(field: string): number {
    const v = this.record[field];
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(field, 'a number');
    return v;
  }

  string(field: string): string {
    const v = this.record[field];
    if (typeof v !== 'string') this.fail(field, 'a string');
    return v;
  }

  bool(field: string): boolean {
    const v = this.record[field];
    if (typeof v !== 'boolean') this.fail(field, 'a boolean');
    return v;
  }

  bytes(field: string, length?: number): Buffer {
    const v = this.record[field];
    if (!(v instanceof Uint8Array) || (length !== undefined && v.length !== length)) {
      this.fail(field, length === undefined ? 'bytes' : `${length} bytes`);
    }
    return Buffer.from(v.buffer, v.byteOffset, v.length);
  }

  array(field: string): unknown[] {
    const v = this.record[field];
    if (!Array.isArray(v)) this.fail(field, 'a list');
    return v;
  }

  strings(field: string): string[] {
    const list = this.array(field);
    if (!list.every((s) => typeof s === 'string')) this.fail(field, 'a list of strings');
    return list as string[];
  }

  record_(field: string): Fields {
    return Fields.of(this.record[field], `${this.what}.${field}`);
  }

  version(supported: number): void {
    const v = this.int('v');
    if (v > supported) throw errors.corrupt(`${this.what} has format version ${v}; this Strata reads up to ${supported}: upgrade Strata`);
  }
}
