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
