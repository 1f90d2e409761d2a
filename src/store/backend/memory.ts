/** A Backend held in a Map: for tests and for throwaway repositories. */
import { errors } from '../errors.js';
import { checkObjectName, partsOf, type Backend, type ByteRange, type ObjectInfo } from './backend.js';

export class MemoryBackend implements Backend {
  readonly location = 'memory:';
  private readonly objects = new Map<string, Buffer>();

  async save(name: string, data: Uint8Array | readonly Uint8Array[]): Promise<void> {
    checkObjectName(name);
    this.objects.set(name, Buffer.concat(partsOf(data)));
  }

  async load(name: string, range?: ByteRange): Promise<Buffer> {
    const data = this.objects.get(name);
    if (!data) throw errors.notFound(`object ${name} does not exist in ${this.location}`);
    return range ? Buffer.from(data.subarray(range.offset, range.offset + range.length)) : Buffer.from(data);
  }

  async stat(name: string): Promise<ObjectInfo> {
    const data = this.objects.get(name);
    if (!data) throw errors.notFound(`object ${name} does not exist in ${this.location}`);
    return { name, size: data.length };
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    for (const [name, data] of [...this.objects]) {
      if (name.startsWith(prefix)) yield { name, size: data.length };
    }
  }

  async remove(name: string): Promise<void> {
    this.objects.delete(name);
  }

  async close(): Promise<void> {}
}
