/**
 * `strata repair snapshots`: for each snapshot whose trees or data cannot all be
 * read, a new snapshot of what can: a file whose data is missing or damaged, or a
 * folder whose tree cannot be read, is left out and named in the new snapshot's
 * errors; the new snapshot keeps the original's time, host and paths, is tagged
 * `repaired` and names the original (`repairedFrom`). The originals stay unless
 * `forget` is asked (a pack found again, or a backup of a source that still has
 * the files, makes them whole again).
 */
import { isStrataError } from '../store/errors.js';
import type { Snapshot } from '../store/format/records.js';
import { TreeBuilder, type Entry, type Tally } from '../store/format/tree.js';
import type { BlobReader, BlobWriter, PackReader, SnapshotRef, SnapshotWriter, TreeReader } from '../store/roles.js';
import { displayPath } from './local-fs.js';

export interface SnapshotRepairer extends TreeReader, Pick<BlobReader, 'loadBlob'>, Pick<BlobWriter, 'saveTree' | 'flush'>, SnapshotWriter,
  Pick<PackReader, 'listPacks' | 'locate'> {
  listSnapshots(onWarning?: (message: string) => void): Promise<SnapshotRef[]>;
  removeSnapshot(id: string): Promise<void>;
  lock(purpose: string): Promise<{ release(): Promise<void> }>;
}

export interface RepairRequest {
  /** Only these snapshots (full ids); all when absent. */
  ids?: string[];
  /** Also read every chunk (a damaged one is left out too), not only look for it in the index and the packs. */
  readData?: boolean;
  dryRun?: boolean;
  /** Remove each original once its repaired snapshot is saved. */
  forget?: boolean;
}

export interface RepairOutcome {
  id: string;
  /** intact: nothing to leave out; repaired: `repaired` is the new snapshot (or the one an earlier repair made); lost: its top tree cannot be read. */
  state: 'intact' | 'repaired' | 'lost';
  repaired?: string;
  leftOut: { path: string; message: string }[];
}

/** A tree as repair rewrites it: its new id (the old one when unchanged), what it holds before and after, what was left out below it. */
interface Fixed {
  id: Buffer;
  changed: boolean;
  before: Tally;
  after: Tally;
  leftOut: { path: string; message: string }[];
}

export async function repairSnapshots(repo: SnapshotRepairer, request: RepairRequest): Promise<RepairOutcome[]> {
  const lock = request.dryRun ? undefined : await repo.lock('repair snapshots');
  try {
    const packs = new Set<string>();
    for await (const { id } of repo.listPacks()) packs.add(id);
    const blobProblems = new Map<string, string | undefined>();
    const problemOf = async (chunk: Buffer): Promise<string | undefined> => {
      const hex = chunk.toString('hex');
      if (blobProblems.has(hex)) return blobProblems.get(hex);
      const entry = repo.locate(chunk);
      let problem = !entry ? `data blob ${hex} is missing` : !packs.has(entry.pack) ? `pack ${entry.pack} holding data blob ${hex} is missing` : undefined;
      if (!problem && request.readData) {
        problem = await repo.loadBlob('data', chunk).then(() => undefined, (e) => {
          if (!isStrataError(e, 'CORRUPT')) throw e;
          return (e as Error).message;
        });
      }
      blobProblems.set(hex, problem);
      return problem;
    };
    const fixedTrees = new Map<string, Fixed | undefined>();
    const fix = async (tree: Buffer): Promise<Fixed | undefined> => {
      const key = tree.toString('latin1');
      if (fixedTrees.has(key)) return fixedTrees.get(key);
      let entries: Entry[] | undefined;
      try {
        entries = await repo.loadTree(tree);
      } catch (e) {
        if (!isStrataError(e, 'CORRUPT') && !isStrataError(e, 'UNSAFE_PATH')) throw e;
      }
      const fixed = entries && await fixEntries(tree, entries);
      fixedTrees.set(key, fixed);
      return fixed;
    };
    const fixEntries = async (tree: Buffer, entries: Entry[]): Promise<Fixed> => {
      const before = new TreeBuilder();
      const after = new TreeBuilder();
      const leftOut: Fixed['leftOut'] = [];
      for (const e of entries) {
        before.add(e);
        const name = `/${displayPath(e.name)}`;
        if (e.type === 'dir') {
          const sub = await fix(e.subtree!);
          if (!sub) {
            leftOut.push({ path: `${name}/`, message: `its folder tree ${e.subtree!.toString('hex')} cannot be read` });
            continue;
          }
          for (const l of sub.leftOut) leftOut.push({ path: name + l.path, message: l.message });
          after.add(sub.changed ? { ...e, subtree: sub.id, tally: sub.after } : e);
          continue;
        }
        let problem: string | undefined;
        for (const chunk of e.chunks ?? []) if ((problem = await problemOf(chunk))) break;
        if (problem) leftOut.push({ path: name, message: problem });
        else after.add(e);
      }
      if (!leftOut.length) return { id: tree, changed: false, before: before.tally, after: before.tally, leftOut };
      const id = request.dryRun ? tree : (await repo.saveTree(after)).id;
      return { id, changed: true, before: before.tally, after: after.tally, leftOut };
    };

    const outcomes: RepairOutcome[] = [];
    const chosen = new Set(request.ids ?? []);
    const snapshots = await repo.listSnapshots();
    /** Originals repaired before: they are not repaired twice. */
    const repairedAs = new Map(snapshots.filter((s) => s.snapshot.repairedFrom).map((s) => [s.snapshot.repairedFrom!, s]));
    for (const { id, snapshot } of snapshots) {
      if (chosen.size && !chosen.has(id)) continue;
      const fixed = await fix(snapshot.tree);
      if (!fixed) {
        outcomes.push({ id, state: 'lost', leftOut: [{ path: '/', message: `its top tree ${snapshot.tree.toString('hex')} cannot be read: nothing of it can be saved` }] });
        continue;
      }
      if (!fixed.changed) {
        outcomes.push({ id, state: 'intact', leftOut: [] });
        continue;
      }
      // An earlier repair is reused only if it left out exactly this (not if a lost pack has come back since).
      const earlier = repairedAs.get(id);
      const outcome: RepairOutcome = { id, state: 'repaired', leftOut: fixed.leftOut, repaired: earlier?.snapshot.tree.equals(fixed.id) ? earlier.id : undefined };
      if (!request.dryRun) {
        if (!outcome.repaired) {
          await repo.flush();
          outcome.repaired = await repo.saveSnapshot(repairedSnapshot(id, snapshot, fixed));
        }
        if (request.forget) await repo.removeSnapshot(id);
      }
      outcomes.push(outcome);
    }
    return outcomes;
  } finally {
    await lock?.release();
  }
}

function repairedSnapshot(id: string, original: Snapshot, fixed: Fixed): Snapshot {
  const s = original.summary;
  const lessBy = (k: keyof Tally): number => fixed.before[k] - fixed.after[k];
  return {
    ...original,
    tree: fixed.id,
    tags: [...new Set([...original.tags, 'repaired'])],
    repairedFrom: id,
    summary: {
      ...s,
      files: s.files - lessBy('files'), dirs: s.dirs - lessBy('dirs'), others: s.others - lessBy('others'), bytes: s.bytes - lessBy('bytes'),
      errors: [...s.errors, ...fixed.leftOut.map((l) => ({ path: l.path, message: `left out by repair: ${l.message}` }))],
    },
  };
}
