/**
 * Bookkeeping for work handed over one piece at a time (capture's files, restore's).
 *
 * Room: a bound on work handed over but not finished, with a first-come queue
 * of those waiting for a place.
 *
 * Capture's walk takes a place for every file before queueing it and the file
 * gives it back when done, so listed-but-unread files stay bounded however wide
 * a folder or deep a tree. A freed place goes to exactly one waiter: the cost
 * per file is constant, whatever the number of folders waiting (waking all of
 * them on every finished file made capture quadratic in the open folders).
 */
export class Room {
  private taken = 0;
  private readonly waiters: (() => void)[] = [];
  private head = 0;

  constructor(private readonly places: number) {}

  /** Resolves once a place is this caller's; give it back with `release`. */
  take(): Promise<void> | undefined {
    if (this.taken < this.places && this.head === this.waiters.length) {
      this.taken++;
      return undefined;
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Gives a place back: to the longest waiter if there is one. */
  release(): void {
    if (this.head < this.waiters.length) {
      const next = this.waiters[this.head];
      this.waiters[this.head++] = noop;
      if (this.head > 1024 && this.head * 2 > this.waiters.length) this.compact();
      next();
    } else {
      this.taken--;
    }
  }

  /** `work`, done on a place taken: the place is given back when it settles. */
  hold<T>(work: Promise<T>): Promise<T> {
    return work.finally(() => this.release());
  }

  /** Waits for its turn without keeping a place: for work that should not start while the room is full. */
  async turn(): Promise<void> {
    await this.take();
    this.release();
  }

  private compact(): void {
    this.waiters.splice(0, this.head);
    this.head = 0;
  }
}

const noop = (): void => {};

/**
 * Waits for work handed over one piece at a time without keeping every piece's promise
 * (a folder may hand over 100,000). All pieces settle before `settled` does, so nothing
 * handed over still runs when it rejects with the first failure.
 */
export class Pending {
  private count = 0;
  private failure: { reason: unknown } | undefined;
  private wake?: () => void;

  get failed(): boolean {
    return this.failure !== undefined;
  }

  add(work: Promise<unknown>): void {
    this.count++;
    work.then(() => this.done(), (reason) => {
      this.failure ??= { reason };
      this.done();
    });
  }

  async settled(): Promise<void> {
    if (this.count > 0) await new Promise<void>((resolve) => { this.wake = resolve; });
    if (this.failure) throw this.failure.reason;
  }

  private done(): void {
    if (--this.count === 0) this.wake?.();
  }
}
