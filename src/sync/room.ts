/**
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
