/**
 * Integrity check, read-only. The config, the key files and their copies first;
 * then the packs: every trailer opens and lists the blobs the index records for
 * that pack (a pack replaced or swapped for another does not), and with
 * `readData` the chosen packs are read whole, their bytes
 * hashed against their names and every blob opened. Then every snapshot's trees
 * are walked (each tree once): every tree loads and every chunk a file needs is
 * indexed in a pack that is there and undamaged. Each problem names the damaged
 * object and the snapshots and files it takes from them; trees that no snapshot
 * reaches are counted apart, since a lost snapshot record shows only there.
 */
import { randomInt } from 'node:crypto';
import { errors, isStrataError } from '../store/errors.js';
import type { Entry } from '../store/format/tree.js';
import type { PackReader, SnapshotRef, TreeReader } from '../store/roles.js';
import { displayPath } from './local-fs.js';

export interface CheckedRepository extends PackReader, TreeReader {
  /** Problems of the config, the key files and their copies. */
  verifyHeaders(): Promise<{ object: string; message: string }[]>;
  listSnapshots(onWarning?: (message: string) => void): Promise<SnapshotRef[]>;
  /** Learns of packs that other processes added or removed since the index last looked. */
  syncIndex(): Promise<unknown>;
}

/** Which packs `readData` reads: part n of m (by pack id, so m runs read everything once), or a random share. */
export type PackSubset = { part: number; of: number } | { percent: number };

export interface CheckProblem {
  /** "pack <id>", "tree <id>", "data blob <id>", "snapshot <id>". */
  object: string;
  message: string;
  /** Ids of the snapshots that cannot be restored whole because of it. */
  snapshots: string[];
  /** Files and folders it affects, as "<snapshot id prefix>:<path>" (the first MAX_NAMED). */
  files: string[];
  filesAffected: number;
}

export interface CheckResult {
  packs: number;
  packsRead: number;
  bytesRead: number;
  blobsRead: number;
  snapshots: number;
  trees: number;
  problems: CheckProblem[];
  /**
   * Indexed trees that no snapshot reaches; `tops` of them are reached by no other tree
   * (each a snapshot forgotten but not pruned, a backup running or interrupted, or a lost
   * snapshot record), the first of which are shown with the names they hold.
   */
  unreached: { trees: number; tops: number; examples: { tree: string; names: string[] }[] };
  /** Packs found damaged and healed from their parity (--read-data), written back whole. */
  healed: { pack: string; shards: number; of: number }[];
  /** Packs whose parity was missing or damaged and was written anew (--read-data). */
  parityWritten: number;
}

export interface CheckProgress {
  phase: 'packs' | 'snapshots';
  /** Packs, or snapshots, done and in all. */
  done: number;
  total: number;
  /** Bytes of the packs done (read whole or not), and of all packs. */
  packBytesDone: number;
  packBytes: number;
}

export interface CheckOptions {
  readData?: boolean;
  /** With readData: only these packs are read (all others still have their trailers checked). */
  subset?: PackSubset;
  onProgress?: (p: CheckProgress) => void;
  signal?: AbortSignal;
}

const MAX_NAMED = 1000;
/** Packs checked at once (each read whole with --read-data: a few 8 MiB packs in memory). */
const PACKS_AT_ONCE = 2;
/** Unreached trees read to find the topmost ones; past this only their count is told. */
const MAX_UNREACHED_READ = 10_000;
const MAX_EXAMPLES = 5;

/** "2/5" or "10%" (the --read-data-subset forms restic users know). */
export function parseSubset(spec: string): PackSubset {
  const part = /^(\d+)\/(\d+)$/.exec(spec);
  if (part) {
    const [n, m] = [Number(part[1]), Number(part[2])];
    if (m >= 1 && n >= 1 && n <= m) return { part: n, of: m };
  }
  const percent = /^(\d+(?:\.\d+)?)%$/.exec(spec);
  if (percent && Number(percent[1]) > 0 && Number(percent[1]) <= 100) return { percent: Number(percent[1]) };
  throw errors.usage(`--read-data-subset takes "n/m" (1 ≤ n ≤ m) or a percentage such as "10%", not "${spec}"`);
}

function chosen(packs: string[], subset: PackSubset | undefined): Set<string> {
  if (!subset) return new Set(packs);
  if ('part' in subset) return new Set(packs.filter((id) => parseInt(id.slice(0, 8), 16) % subset.of === subset.part - 1));
  const wanted = Math.ceil((packs.length * subset.percent) / 100);
  const pool = [...packs];
  for (let i = 0; i < wanted; i++) {
    const j = i + randomInt(pool.length - i);
    [pool[i], pool[j]] = [pool[j], pool[i]];
  }
  return new Set(pool.slice(0, wanted));
}

/** A problem being gathered: what it takes from which snapshots. */
interface Gathered {
  object: string;
  message: string;
  snapshots: Set<string>;
  files: string[];
  filesAffected: number;
}

/**
 * Something wrong below a tree: the problem's key and, when `path` is set, the path from that
 * tree ('' for the tree itself) of the one file or folder it costs; past MAX_NAMED named ones
 * a tree keeps only a count per cause (no path), so memory stays bounded under massive damage.
 */
interface Damage {
  cause: string;
  path?: string;
  count: number;
}

/** A tree's damage: the first MAX_NAMED named, the rest counted per cause. */
function bounded(damage: Damage[]): Damage[] {
  if (damage.length <= MAX_NAMED) return damage;
  const kept: Damage[] = [];
  const counted = new Map<string, Damage>();
  for (const d of damage) {
    if (d.path !== undefined && kept.length < MAX_NAMED) {
      kept.push(d);
      continue;
    }
    const c = counted.get(d.cause);
    if (c) c.count += d.count;
    else counted.set(d.cause, { cause: d.cause, count: d.count });
  }
  return [...kept, ...counted.values()];
}

const NO_DAMAGE: Damage[] = [];

export async function check(repo: CheckedRepository, opts: CheckOptions = {}): Promise<CheckResult> {
  const result: CheckResult = {
    packs: 0, packsRead: 0, bytesRead: 0, blobsRead: 0, snapshots: 0, trees: 0, problems: [], unreached: { trees: 0, tops: 0, examples: [] }, healed: [], parityWritten: 0,
  };
  const gathered = new Map<string, Gathered>();
  const problem = (object: string, message: string): string => {
    if (!gathered.has(object)) gathered.set(object, { object, message, snapshots: new Set(), files: [], filesAffected: 0 });
    return object;
  };
  /** Blob id (hex) → the key of the problem that makes it unreadable (blobs that failed to open). */
  const badBlobs = new Map<string, string>();
  /** Pack → the key of the problem that makes every blob the index reads from it unreadable. */
  const badPacks = new Map<string, string>();
  const markPack = (pack: string, message: string): void => {
    badPacks.set(pack, problem(`pack ${pack}`, message));
  };

  for (const p of await repo.verifyHeaders()) problem(p.object, p.message);

  // ---- packs
  const sizes = new Map<string, number>();
  for await (const { id, size } of repo.listPacks()) sizes.set(id, size);
  result.packs = sizes.size;
  const toRead = opts.readData ? chosen([...sizes.keys()], opts.subset) : new Set<string>();
  let done = 0;
  let packBytesDone = 0;
  const packBytes = [...sizes.values()].reduce((a, b) => a + b, 0);
  const checkPack = async (pack: string, size: number): Promise<void> => {
    opts.onProgress?.({ phase: 'packs', done: done++, total: result.packs, packBytesDone, packBytes });
    packBytesDone += size;
    try {
      if (toRead.has(pack)) {
        const verdict = await repo.verifyPack(pack);
        result.packsRead++;
        result.bytesRead += verdict.bytes;
        result.blobsRead += verdict.blobs.length - verdict.damaged.length;
        if (verdict.healed) result.healed.push({ pack, ...verdict.healed });
        if (verdict.parity?.written) result.parityWritten++;
        // Parity that cannot be put right is a problem of its own only while the pack is intact (else it is named with the pack's).
        else if (verdict.parity && verdict.matchesName) problem(`parity ${pack}`, `${verdict.parity.problem}: the pack is intact but not protected`);
        const unhealed = verdict.parity && !verdict.matchesName ? ` (${verdict.parity.problem})` : '';
        if (verdict.trailerDamage) markPack(pack, `${verdict.trailerDamage}${unhealed}`);
        else if (!listsIndexed(repo, pack, verdict.blobs)) {
          markPack(pack, verdict.matchesName ? 'intact, but the index records other blobs for it: run `strata repair index`'
            : 'its bytes no longer match its name and it holds other blobs than the index records for it: it was replaced or swapped with another pack');
        } else if (!verdict.matchesName) {
          // Only the blobs that fail to open are lost: the others authenticated, their ids checked.
          const key = problem(`pack ${pack}`, `its bytes no longer match its name (${verdict.damaged.length} of ${verdict.blobs.length} blobs fail to open): it is damaged${unhealed}`);
          for (const d of verdict.damaged) badBlobs.set(d.id.toString('hex'), key);
        }
      } else {
        const blobs = await repo.packTrailer(pack);
        if (!listsIndexed(repo, pack, blobs)) {
          markPack(pack, 'its trailer lists other blobs than the index records for it: the pack was replaced or swapped with another (`strata check --read-data` reads it)');
        }
      }
    } catch (e) {
      if (isStrataError(e, 'NOT_FOUND')) sizes.delete(pack); // removed since the listing (a prune carrying out a schedule)
      else if (isStrataError(e, 'CORRUPT')) markPack(pack, (e as Error).message);
      else if (isStrataError(e, 'BACKEND')) markPack(pack, `cannot be read: ${(e as Error).message}`); // EIO: how some filesystems report rot
      else throw e;
    }
  };
  // A few packs at once: one is read while another's blobs are opened on the thread pool.
  const queue = [...sizes];
  await Promise.all(Array.from({ length: PACKS_AT_ONCE }, async () => {
    for (let next = queue.shift(); next; next = queue.shift()) {
      if (opts.signal?.aborted) throw errors.interrupted('check interrupted: nothing was changed');
      await checkPack(...next);
    }
  }));

  // ---- snapshots and their trees
  const packProblems = new Map(gathered);
  let walked = new Map<string, Damage[]>();
  let missing = false;
  const walkAll = async (): Promise<void> => {
    gathered.clear();
    for (const [key, g] of packProblems) gathered.set(key, { ...g, snapshots: new Set(), files: [], filesAffected: 0 });
    walked = new Map();
    missing = false;
    result.trees = 0;
    const snapshots = await repo.listSnapshots((m) => {
      const name = /^snapshot ([0-9a-f]+)/.exec(m)?.[1];
      problem(name ? `snapshot ${name}` : 'snapshot', m);
    });
    result.snapshots = snapshots.length;
    let done = 0;
    for (const { id, snapshot } of snapshots) {
      if (opts.signal?.aborted) throw errors.interrupted('check interrupted: nothing was changed');
      opts.onProgress?.({ phase: 'snapshots', done: done++, total: snapshots.length, packBytesDone, packBytes });
      for (const d of await walk(snapshot.tree)) {
        const g = gathered.get(d.cause)!;
        g.snapshots.add(id);
        g.filesAffected += d.count;
        if (d.path !== undefined && g.files.length < MAX_NAMED) g.files.push(`${id.slice(0, 8)}:${d.path || '/'}`);
      }
    }
  };
  /** Why a blob cannot be read, when its pack is damaged or gone; undefined when nothing says so. */
  const causeOf = (type: 'data' | 'tree', id: Buffer): string | undefined => {
    const hex = id.toString('hex');
    const bad = badBlobs.get(hex);
    if (bad) return bad;
    const entry = repo.locate(id);
    // Only blobs the index reads from a damaged pack: a copy in another pack (a duplicate, a prune's copy) is still good.
    const badPack = entry && badPacks.get(entry.pack);
    if (badPack) return badPack;
    if (!entry || !sizes.has(entry.pack)) missing = true;
    if (!entry) {
      const lost = repo.lostPackOf(id);
      return lost ? problem(`pack ${lost}`, 'missing from the repository (no prune deleted it)') : problem(`${type} blob ${hex}`, 'missing: no pack holds it');
    }
    return sizes.has(entry.pack) ? undefined : problem(`pack ${entry.pack}`, 'missing from the repository');
  };
  /** Tree id (latin1 key) → what is wrong below it; each tree is read once, however many snapshots share it. */
  const walk = async (tree: Buffer): Promise<Damage[]> => {
    const key = tree.toString('latin1');
    const known = walked.get(key);
    if (known) return known;
    let entries: Entry[];
    try {
      entries = await repo.loadTree(tree);
    } catch (e) {
      if (!isStrataError(e, 'CORRUPT') && !isStrataError(e, 'UNSAFE_PATH')) throw e;
      const cause = causeOf('tree', tree) ?? problem(`tree ${tree.toString('hex')}`, (e as Error).message);
      const damage = [{ cause, path: '', count: 1 }];
      walked.set(key, damage);
      return damage;
    }
    result.trees++;
    const damage: Damage[] = [];
    for (const e of entries) {
      const name = `/${displayPath(e.name)}`;
      if (e.type === 'dir') for (const d of await walk(e.subtree!)) damage.push(d.path === undefined ? d : { ...d, path: name + d.path });
      const causes = new Set<string>();
      for (const chunk of e.chunks ?? []) {
        const cause = causeOf('data', chunk);
        if (cause) causes.add(cause);
      }
      for (const cause of causes) damage.push({ cause, path: name, count: 1 });
    }
    const kept = damage.length ? bounded(damage) : NO_DAMAGE;
    walked.set(key, kept);
    return kept;
  };
  await walkAll();
  if (missing) {
    // A backup that ran meanwhile made snapshots whose packs came after the listing or
    // after this process's index last looked: look again before calling them missing.
    await repo.syncIndex();
    for await (const { id, size } of repo.listPacks()) if (!sizes.has(id)) sizes.set(id, size);
    await walkAll();
  }
  result.unreached = await unreachedTrees(repo, walked);
  result.problems = [...gathered.values()].map((g) => ({ ...g, snapshots: [...g.snapshots] }));
  return result;
}

/** True when a trailer lists exactly the blobs the index records for the pack (a pack the index does not know yet passes). */
function listsIndexed(repo: PackReader, pack: string, blobs: readonly { id: Buffer }[]): boolean {
  const indexed = repo.indexedBlobsOf(pack);
  if (!indexed) return true;
  if (indexed.length !== blobs.length) return false;
  const listed = new Set(blobs.map((b) => b.id.toString('latin1')));
  return indexed.every((id) => listed.has(id.toString('latin1')));
}

/**
 * Indexed trees that no snapshot reaches, and the topmost of them: each top is a
 * snapshot forgotten but not pruned yet, a backup running or interrupted, or a
 * snapshot whose record was lost (nothing else can tell a lost record).
 */
async function unreachedTrees(repo: CheckedRepository, walked: ReadonlyMap<string, unknown>): Promise<CheckResult['unreached']> {
  const unreached: Buffer[] = [];
  for await (const [id, { type }] of repo.indexedBlobs()) if (type === 'tree' && !walked.has(id.toString('latin1'))) unreached.push(Buffer.from(id));
  if (!unreached.length || unreached.length > MAX_UNREACHED_READ) return { trees: unreached.length, tops: 0, examples: [] };
  const below = new Set<string>();
  const names = new Map<string, string[]>();
  for (const tree of unreached) {
    const entries = await repo.loadTree(tree).catch(() => [] as Entry[]);
    names.set(tree.toString('latin1'), entries.map((e) => displayPath(e.name)));
    for (const e of entries) if (e.subtree) below.add(e.subtree.toString('latin1'));
  }
  const tops = unreached.filter((t) => !below.has(t.toString('latin1')));
  return {
    trees: unreached.length,
    tops: tops.length,
    examples: tops.slice(0, MAX_EXAMPLES).map((t) => ({ tree: t.toString('hex'), names: names.get(t.toString('latin1'))! })),
  };
}
