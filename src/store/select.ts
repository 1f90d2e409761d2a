/** Choosing snapshots: `latest`, unique id prefixes, and the parent of a new backup. */
import { errors } from './errors.js';
import type { SnapshotRef } from './roles.js';

export interface SnapshotFilter {
  host?: string;
  paths?: string[];
  tags?: string[];
}

const samePaths = (a: string[], b: string[]): boolean =>
  a.length === b.length && [...a].sort().every((p, i) => p === [...b].sort()[i]);

export function matches(ref: SnapshotRef, f: SnapshotFilter): boolean {
  const s = ref.snapshot;
  return (f.host === undefined || s.host === f.host) &&
    (f.paths === undefined || samePaths(s.paths, f.paths)) &&
    (f.tags === undefined || f.tags.every((t) => s.tags.includes(t)));
}

/** Resolves "latest" (newest matching `filter`) or a unique id prefix among `snapshots` (oldest first). */
export function selectSnapshot(snapshots: SnapshotRef[], ref: string, filter: SnapshotFilter = {}): SnapshotRef {
  if (ref === 'latest') {
    const found = snapshots.filter((s) => matches(s, filter)).at(-1);
    if (!found) throw errors.notFound('there is no snapshot yet' + (Object.keys(filter).length ? ' matching the filter' : ''));
    return found;
  }
  if (!/^[0-9a-f]{1,64}$/.test(ref)) throw errors.usage(`"${ref}" is not a snapshot id, id prefix or "latest"`);
  const found = snapshots.filter((s) => s.id.startsWith(ref));
  if (found.length === 0) throw errors.notFound(`no snapshot has an id starting with ${ref}`);
  if (found.length > 1) throw errors.ambiguous(`${ref} matches ${found.length} snapshots: ${found.map((s) => s.id.slice(0, 12)).join(', ')}`);
  return found[0];
}

/** The parent of a backup: the newest snapshot of the same host and the same paths. */
export const findParent = (snapshots: SnapshotRef[], host: string, paths: string[]): SnapshotRef | undefined =>
  snapshots.filter((s) => matches(s, { host, paths })).at(-1);
