/**
 * The change journal: a filesystem watcher (@parcel/watcher, inotify on Linux)
 * records which folders changed, so a capture re-reads only those and reuses
 * the parent snapshot's subtrees for everything else. Whatever a watcher can
 * miss (its start, an overflow, an error) turns the next capture into a full
 * walk; so does a periodic schedule, set by the service.
 */
import path from 'node:path';
import watcher from '@parcel/watcher';

export interface Changes {
  /** Walk everything: the journal cannot vouch for any folder. */
  full: boolean;
  /** Folders whose entries changed (their parents too: a child's own metadata lives there). */
  dirty: Set<string>;
}

export class ChangeJournal {
  private dirty = new Set<string>();
  private full = true; // nothing is known before the first capture
  private subscription?: watcher.AsyncSubscription;
  lastError?: string;

  private constructor(readonly root: string, private readonly onChange: () => void) {}

  /** Starts watching `root` (recursively); `onChange` is called after every batch of events. */
  static async start(root: string, onChange: () => void): Promise<ChangeJournal> {
    const journal = new ChangeJournal(path.resolve(root), onChange);
    journal.subscription = await watcher.subscribe(journal.root, (err, events) => journal.record(err, events));
    return journal;
  }

  /** One batch from the watcher. An error (an overflow, a failure) means changes may be lost: walk everything next. */
  record(err: Error | null, events: { path: string }[] | undefined): void {
    if (err) {
      this.lastError = err.message;
      this.full = true;
    }
    for (const event of events ?? []) this.mark(event.path);
    this.onChange();
  }

  private mark(changed: string): void {
    this.dirty.add(changed);
    this.dirty.add(path.dirname(changed));
  }

  /** Marks the next capture as a full walk (the periodic check, or after a failed capture). */
  requireFullWalk(): void {
    this.full = true;
  }

  get pending(): number {
    return this.full ? Infinity : this.dirty.size;
  }

  /** What changed since the last take; the journal starts empty again. */
  take(): Changes {
    const changes = { full: this.full, dirty: this.dirty };
    this.dirty = new Set();
    this.full = false;
    return changes;
  }

  /** Puts changes back (a capture that failed must not lose them). */
  giveBack(changes: Changes): void {
    if (changes.full) this.full = true;
    for (const d of changes.dirty) this.dirty.add(d);
  }

  async close(): Promise<void> {
    await this.subscription?.unsubscribe();
  }
}

/**
 * The capture's `isUnchanged` for a set of changes: a folder is unchanged when
 * neither it nor anything below it is dirty.
 */
export function unchangedFolders(changes: Changes): ((folder: string) => boolean) | undefined {
  if (changes.full) return undefined;
  const touched = new Set<string>();
  for (const d of changes.dirty) {
    for (let p = d; !touched.has(p); p = path.dirname(p)) {
      touched.add(p);
      if (p === '/' || p === '.') break;
    }
  }
  return (folder) => !touched.has(folder);
}
