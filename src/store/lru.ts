/** A bounded map that forgets the least recently used entries once their weight passes a limit. */
export class Lru<K, V> {
  private readonly map = new Map<K, V>();
  private weight = 0;
  constructor(private readonly limit: number, private readonly weigh: (v: V) => number = () => 1) {}

  get(k: K): V | undefined {
    const v = this.map.get(k);
    if (v !== undefined) {
      this.map.delete(k);
      this.map.set(k, v);
    }
    return v;
  }

  clear(): void {
    this.map.clear();
    this.weight = 0;
  }

  deleteWhere(matches: (k: K) => boolean): void {
    for (const k of [...this.map.keys()]) if (matches(k)) this.delete(k);
  }

  delete(k: K): void {
    const old = this.map.get(k);
    if (old === undefined) return;
    this.weight -= this.weigh(old);
    this.map.delete(k);
  }

  set(k: K, v: V): void {
    this.delete(k);
    this.map.set(k, v);
    this.weight += this.weigh(v);
    for (const [key, value] of this.map) {
      if (this.weight <= this.limit || this.map.size <= 1) break;
      this.map.delete(key);
      this.weight -= this.weigh(value);
    }
  }
}
