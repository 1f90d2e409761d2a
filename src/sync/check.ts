/**
 * Integrity check: every pack's trailer opens, every snapshot's trees load, every
 * chunk a file needs is indexed and its pack is present; with `readData`, every blob of every pack is
 * read, authenticated and its id re-checked. Problems name the object and the
 * files they affect; nothing is changed.
 */
import { isStrataError } from '../store/errors.js';
import type { Entry } from '../store/format/tree.js';
import { packIdFromName, readPackTrailer } from '../store/pack.js';
import type { Repository } from '../store/repository.js';
import { displayPath } from './local-fs.js';

export interface CheckProblem {
  object: string;
  message: string;
  /** Files (snapshot id prefix + path) that cannot be restored whole because of it. */
  affects: string[];
}

export interface CheckResult {
  packs: number;
  snapshots: number;
  trees: number;
  blobsRead: number;
  problems: CheckProblem[];
}

export async function check(repo: Repository, opts: { readData?: boolean; onProblem?: (p: CheckProblem) => void } = {}): Promise<CheckResult> {
  const result: CheckResult = { packs: 0, snapshots: 0, trees: 0, blobsRead: 0, problems: [] };
  const problem = (p: CheckProblem): void => {
    result.problems.push(p);
    opts.onProblem?.(p);
  };
  const badChunks = new Map<string, string>();
  const packs = new Set<string>();
  for await (const { name } of repo.backend.list('packs/')) {
    const packId = packIdFromName(name);
    packs.add(packId);
    result.packs++;
    try {
      const blobs = await readPackTrailer(repo.backend, packId, repo.sealer);
      if (!opts.readData) continue;
      for (const b of blobs) {
        try {
          await repo.loadBlob(b.type, b.id);
          result.blobsRead++;
        } catch (e) {
          if (!isStrataError(e, 'CORRUPT')) throw e;
          badChunks.set(b.id.toString('hex'), (e as Error).message);
        }
      }
    } catch (e) {
      if (!isStrataError(e, 'CORRUPT')) throw e;
      problem({ object: `pack ${packId}`, message: (e as Error).message, affects: [] });
    }
  }
  const seenTrees = new Set<string>();
  for (const { id, snapshot } of await repo.listSnapshots((m) => problem({ object: 'snapshot', message: m, affects: [] }))) {
    result.snapshots++;
    const walk = async (tree: Buffer, prefix: string): Promise<void> => {
      const key = tree.toString('hex');
      let entries: Entry[];
      try {
        entries = await repo.loadTree(tree);
      } catch (e) {
        if (!isStrataError(e, 'CORRUPT') && !isStrataError(e, 'UNSAFE_PATH')) throw e;
        problem({ object: `tree ${key}`, message: (e as Error).message, affects: [`${id.slice(0, 8)}:${prefix || '/'}`] });
        return;
      }
      if (seenTrees.has(key)) return;
      seenTrees.add(key);
      result.trees++;
      for (const e of entries) {
        const p = `${prefix}/${displayPath(e.name)}`;
        if (e.type === 'dir') await walk(e.subtree!, p);
        for (const chunk of e.chunks ?? []) {
          const hex = chunk.toString('hex');
          const pack = repo.packOf(chunk);
          const lost = !pack && repo.lostPackOf(chunk);
          const bad = lost ? `pack ${lost} holding data blob ${hex} is missing`
            : !pack ? `data blob ${hex} is missing`
            : !packs.has(pack) ? `pack ${pack} holding data blob ${hex} is missing` : badChunks.get(hex);
          if (bad) problem({ object: `data blob ${hex}`, message: bad, affects: [`${id.slice(0, 8)}:${p}`] });
        }
      }
    };
    await walk(snapshot.tree, '');
  }
  return result;
}
