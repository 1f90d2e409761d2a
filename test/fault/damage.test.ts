/**
 * Damage injection: 1,000 seeded cases, each one kind of harm done to a copy of
 * a small repository behind Strata's back (bits flipped, packs truncated,
 * extended or deleted, parity, snapshot records, key files, the config and the
 * local index damaged or lost). After each: `check --read-data` must name the
 * damaged object (or the copy that stood in for it), or heal it from its parity
 * and say so, and reading every file of every snapshot must give the right bytes
 * or an error, never wrong bytes. The counts are printed for CI's log.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { isStrataError } from '../../src/store/errors.js';
import { LocalBackend } from '../../src/store/backend/local.js';
import { Repository } from '../../src/store/repository.js';
import { capture } from '../../src/sync/capture.js';
import { check, type CheckResult } from '../../src/sync/check.js';
import { fileChunks, resolvePath, walkTree } from '../../src/sync/tree-walk.js';
import { packFiles } from '../kit/packs.js';
import { Random, randomStream } from '../kit/random.js';
import { newRepository, PASSWORD } from '../kit/repo.js';
import { tempDir } from '../kit/tmp.js';

const CASES = 1000;

type Kind = 'pack bit flip' | 'pack truncated' | 'pack extended' | 'pack deleted' | 'parity bit flip' | 'parity deleted' | 'snapshot bit flip' | 'snapshot deleted'
  | 'key file damaged' | 'config damaged' | 'index lost' | 'index file damaged';

/** Each kind's share of the cases: packs are most of a repository's bytes. */
const KINDS: [Kind, number][] = [
  ['pack bit flip', 40], ['pack truncated', 12], ['pack extended', 5], ['pack deleted', 8], ['parity bit flip', 5], ['parity deleted', 3],
  ['snapshot bit flip', 8], ['snapshot deleted', 5],
  ['key file damaged', 6], ['config damaged', 6], ['index lost', 4], ['index file damaged', 6],
];

function pick(rnd: Random): Kind {
  let n = rnd.int(KINDS.reduce((a, [, w]) => a + w, 0));
  for (const [kind, weight] of KINDS) if ((n -= weight) < 0) return kind;
  throw new Error('unreachable');
}

const digest = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Every file of every snapshot (by snapshot id and path) with the digest of its content. */
type Expected = Map<string, Map<string, string>>;

async function files(root: string, dir = root): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...await files(root, p));
    else out.push(p);
  }
  return out;
}

/** A repository of three snapshots in small packs (about 40 of them), and what each snapshot holds. */
async function pristine(t: Parameters<typeof tempDir>[0]) {
  const made = await newRepository(t, undefined, { packSize: 48 * 1024 });
  const source = path.join(made.dir, 'share');
  const rnd = new Random(7);
  for (let d = 0; d < 4; d++) {
    await fs.mkdir(path.join(source, `d${d}`), { recursive: true });
    for (let f = 0; f < 8; f++) {
      const size = [0, 100, 5_000, 30_000, 90_000][rnd.int(5)];
      await fs.writeFile(path.join(source, `d${d}`, `f${f}`), f % 2 ? randomStream(d * 100 + f, size) : rnd.text(size));
    }
  }
  const expected: Expected = new Map();
  let parent;
  for (let s = 0; s < 3; s++) {
    if (s) for (let i = 0; i < 5; i++) await fs.writeFile(path.join(source, `d${rnd.int(4)}`, `f${rnd.int(8)}`), randomStream(1000 * s + i, 20_000 + rnd.int(40_000)));
    parent = await capture(made.repo, { paths: [source], parent });
    const held = new Map<string, string>();
    for (const f of await files(source)) held.set(f, digest(await fs.readFile(f)));
    expected.set(parent.id, held);
  }
  await made.repo.close();
  return { root: path.join(made.dir, 'repo'), source, expected, dir: made.dir };
}

interface Outcome {
  detected: boolean;
  /** Healed from parity by check (a damaged pack rebuilt, or damaged parity written anew). */
  byParity: boolean;
  /** Every file of every snapshot still read right (a copy stood in, or the harm touched nothing needed). */
  healed: boolean;
  wrongBytes: string[];
  note: string;
}

/** Does the harm to the repository at `root` (or its cache); returns the object harmed and the file to put back afterwards. */
async function harm(kind: Kind, rnd: Random, root: string, cacheDir: string): Promise<{ object: string; file?: string }> {
  const flip = async (file: string): Promise<void> => {
    const bytes = await fs.readFile(file);
    if (!bytes.length) return;
    bytes[rnd.int(bytes.length)] ^= 1 << rnd.int(8);
    await fs.writeFile(file, bytes);
  };
  const one = (list: string[]): string => list[rnd.int(list.length)];
  const packs = await packFiles(root);
  const pack = one(packs);
  const snapshot = one(await files(path.join(root, 'snapshots')));
  const key = one([...await files(path.join(root, 'keys')), ...await files(path.join(root, 'copies', 'keys'))]);
  const config = one([path.join(root, 'config'), path.join(root, 'copies', 'config')]);
  const parity = path.join(root, 'parity', path.basename(pack).slice(0, 2), path.basename(pack));
  switch (kind) {
    case 'pack bit flip': await flip(pack); return { object: `pack ${path.basename(pack)}`, file: pack };
    case 'pack truncated': await fs.truncate(pack, rnd.int((await fs.stat(pack)).size)); return { object: `pack ${path.basename(pack)}`, file: pack };
    case 'pack extended': await fs.appendFile(pack, rnd.bytes(1 + rnd.int(200))); return { object: `pack ${path.basename(pack)}`, file: pack };
    case 'pack deleted': await fs.rm(pack); return { object: `pack ${path.basename(pack)}`, file: pack };
    case 'parity bit flip': await flip(parity); return { object: `parity ${path.basename(pack)}`, file: parity };
    case 'parity deleted': await fs.rm(parity); return { object: `parity ${path.basename(pack)}`, file: parity };
    case 'snapshot bit flip': await flip(snapshot); return { object: `snapshot ${path.basename(snapshot)}`, file: snapshot };
    case 'snapshot deleted': await fs.rm(snapshot); return { object: `snapshot ${path.basename(snapshot)}`, file: snapshot };
    case 'key file damaged': await flip(key); return { object: path.relative(root, key), file: key };
    case 'config damaged': await flip(config); return { object: path.relative(root, config), file: config };
    case 'index lost': await fs.rm(cacheDir, { recursive: true, force: true }); return { object: 'index' };
    case 'index file damaged': {
      const f = one((await files(cacheDir)).filter((p) => !p.endsWith('LOCK')));
      await flip(f);
      return { object: `index file ${path.basename(f)}` };
    }
  }
}

async function readEverything(repo: Repository, expected: Expected, source: string): Promise<{ right: number; failed: number; wrong: string[] }> {
  const counts = { right: 0, failed: 0, wrong: [] as string[] };
  const snapshots = new Set((await repo.listSnapshots()).map((s) => s.id));
  for (const [id, held] of expected) {
    if (!snapshots.has(id)) {
      counts.failed += held.size; // its record is gone or damaged: check tells of it
      continue;
    }
    const snapshot = await repo.loadSnapshot(id);
    const seen = new Set<string>();
    try {
      for await (const { path: rel, entry } of walkTree(repo, await resolvePath(repo, snapshot.tree, source))) {
        if (entry.type !== 'file') continue;
        const file = path.join(source, rel.toString());
        seen.add(file);
        try {
          const parts: Buffer[] = [];
          for await (const chunk of fileChunks(repo, entry)) parts.push(chunk);
          if (digest(Buffer.concat(parts)) === held.get(file)) counts.right++;
          else counts.wrong.push(`${id.slice(0, 8)}:${file}`);
        } catch (e) {
          if (!isStrataError(e)) throw e;
          counts.failed++;
        }
      }
    } catch (e) {
      if (!isStrataError(e)) throw e; // a folder that cannot be read: its files are not listed
    }
    counts.failed += [...held.keys()].filter((f) => !seen.has(f)).length;
  }
  return counts;
}

const names = (r: CheckResult, object: string): boolean => r.problems.some((p) => p.object === object);

t.test(`${CASES} seeded damage cases: every one detected, never a wrong byte`, async (t) => {
  const { root, source, expected, dir } = await pristine(t);
  const pristineCopy = path.join(dir, 'pristine');
  await fs.cp(root, pristineCopy, { recursive: true });
  const warmCache = path.join(dir, 'warm-cache');
  // A cache made by opening once: the index damage cases harm a real LevelDB.
  await (await Repository.open(new LocalBackend(root), { password: PASSWORD, cacheDir: warmCache })).close();
  const tally = new Map<Kind, { run: number; detected: number; healed: number; byParity: number }>();
  const failures: string[] = [];
  let wrongTotal = 0;

  for (let i = 0; i < CASES; i++) {
    const rnd = new Random(10_000 + i);
    const kind = pick(rnd);
    const cacheDir = path.join(dir, `cache-${i}`);
    await fs.cp(warmCache, cacheDir, { recursive: true });
    const { object, file } = await harm(kind, rnd, root, cacheDir);
    const outcome = await judge(kind, object, root, cacheDir, expected, source);
    const row = tally.get(kind) ?? { run: 0, detected: 0, healed: 0, byParity: 0 };
    row.run++;
    if (outcome.detected) row.detected++;
    if (outcome.healed) row.healed++;
    if (outcome.byParity) row.byParity++;
    tally.set(kind, row);
    wrongTotal += outcome.wrongBytes.length;
    if (!outcome.detected || outcome.wrongBytes.length) failures.push(`case ${i} (${kind}, ${object}): ${outcome.note}`);
    // Undo: the repository back as it was (readers change nothing in it but what they heal, the harmed object; the cache goes).
    if (file) await fs.copyFile(path.join(pristineCopy, path.relative(root, file)), file);
    await fs.rm(cacheDir, { recursive: true, force: true });
  }
  const run = [...tally.values()].reduce((a, r) => a + r.run, 0);
  const detected = [...tally.values()].reduce((a, r) => a + r.detected, 0);
  const healed = [...tally.values()].reduce((a, r) => a + r.healed, 0);
  const byParity = [...tally.values()].reduce((a, r) => a + r.byParity, 0);
  t.comment(`fault suite, damage: ${run} cases run, ${detected} detected, ${byParity} healed from parity, ${healed} read right after check (parity, a copy or a rebuilt index stood in), ` +
    `${wrongTotal} files with wrong bytes`);
  for (const [kind, r] of tally) t.comment(`  ${kind}: ${r.run} run, ${r.detected} detected, ${r.byParity} healed from parity, ${r.healed} read right`);
  t.ok(byParity > 0, 'parity heals some of them');
  t.same(failures, [], 'every case detected, and no file read back wrong');
  t.equal(run, CASES);
});

async function judge(kind: Kind, object: string, root: string, cacheDir: string, expected: Expected, source: string): Promise<Outcome> {
  const warnings: string[] = [];
  let repo: Repository;
  try {
    repo = await Repository.open(new LocalBackend(root), { password: PASSWORD, cacheDir, readOnly: true, onWarning: (m) => warnings.push(m) });
  } catch (e) {
    if (!isStrataError(e)) throw e;
    // Refusing to open at all is detection when the error names what is harmed.
    const named = kind === 'key file damaged' ? /damaged/.test((e as Error).message) : kind === 'config damaged' && isStrataError(e, 'CORRUPT');
    return { detected: named, byParity: false, healed: false, wrongBytes: [], note: `open failed: ${(e as Error).message}` };
  }
  try {
    const result = await check(repo, { readData: true });
    const read = await readEverything(repo, expected, source);
    const healed = read.failed === 0 && read.wrong.length === 0;
    const told = warnings.join(' | ');
    let detected: boolean;
    const healedPack = result.healed.some((h) => `pack ${h.pack}` === object);
    let byParity = healedPack;
    switch (kind) {
      case 'pack bit flip': case 'pack truncated': case 'pack extended': case 'pack deleted':
        // Healed and said so, or named, and when files cannot be read whole, with the files it costs.
        detected = healedPack ? healed : names(result, object) && (read.failed === 0 || result.problems.some((p) => p.filesAffected > 0));
        break;
      case 'parity bit flip': case 'parity deleted':
        // The pack is intact: its parity is written anew, and nothing is lost.
        byParity = result.parityWritten === 1;
        detected = byParity && result.problems.length === 0 && healed;
        break;
      case 'snapshot bit flip':
        detected = names(result, object);
        break;
      case 'snapshot deleted':
        detected = result.unreached.tops > 0;
        break;
      case 'key file damaged':
        detected = names(result, object);
        break;
      case 'config damaged':
        detected = names(result, object);
        break;
      case 'index lost': case 'index file damaged':
        // The index is a cache of the packs: harm to it must cost nothing (no false alarm, everything read right).
        detected = result.problems.length === 0 && healed;
        break;
    }
    return {
      detected, byParity, healed, wrongBytes: read.wrong,
      note: `${result.problems.map((p) => `${p.object}: ${p.message}`).join('; ') || 'check found nothing'}; unreached tops ${result.unreached.tops}; ` +
        `reads ${read.right} right, ${read.failed} failed, ${read.wrong.length} wrong; warnings: ${told || 'none'}`,
    };
  } finally {
    await repo.close();
  }
}
