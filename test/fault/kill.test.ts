/**
 * Kill -9 at 50 seeded points of real `strata` processes: backups, prunes,
 * index repairs and replications to a second folder, each killed when it
 * reaches a point chosen by the seed (at start, once it holds its lock,
 * part-way through writing or copying packs, once prune has scheduled or begun
 * deleting). After each kill: the repository checks out, every snapshot made
 * before reads back byte for byte, the copy holds no snapshot without its data,
 * and the same operation run again completes, without storing or copying again
 * what the killed one made durable, leaving no stale lock or partial file. The
 * counts are printed for CI's log.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { LocalBackend } from '../../src/store/backend/local.js';
import { Repository } from '../../src/store/repository.js';
import { check } from '../../src/sync/check.js';
import { fileChunks, resolvePath, walkTree } from '../../src/sync/tree-walk.js';
import { strata, strataAsync } from '../kit/cli.js';
import { packBytes, packFiles } from '../kit/packs.js';
import { Random, randomStream } from '../kit/random.js';
import { tempDir } from '../kit/tmp.js';
import { until } from '../kit/wait.js';

const KILLS = 50;

const digest = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const count = async (dir: string): Promise<number> => (await fs.readdir(dir).catch(() => [])).length;

type Op = 'backup' | 'prune' | 'repair index' | 'replicate';

t.test(`${KILLS} kills at seeded points: nothing made before is lost, and the next run completes`, async (t) => {
  const dir = tempDir(t);
  const repo = path.join(dir, 'repo');
  const source = path.join(dir, 'share');
  const env = { STRATA_REPOSITORY: repo, STRATA_PASSWORD: 'pw', STRATA_CACHE_DIR: path.join(dir, 'cache') };
  const copy = path.join(dir, 'copy');
  await fs.mkdir(source);
  await fs.writeFile(path.join(source, 'first.txt'), 'the first snapshot');
  t.equal(strata(['init'], env).code, 0);
  /** Snapshot id → every file it holds, with the digest of its content. */
  const expected = new Map<string, Map<string, string>>();
  const held = async (): Promise<Map<string, string>> => {
    const files = new Map<string, string>();
    for (const sub of await fs.readdir(source, { recursive: true, withFileTypes: true })) {
      if (sub.isFile()) files.set(path.join(sub.parentPath, sub.name), digest(await fs.readFile(path.join(sub.parentPath, sub.name))));
    }
    return files;
  };
  const backedUp = async (stdout: string): Promise<number> => {
    const snap = JSON.parse(stdout);
    expected.set(snap.id, await held());
    return snap.summary.bytesAdded;
  };
  await backedUp(strata(['backup', source, '--json'], env).stdout);

  const tally = { killed: 0, finishedFirst: 0, byOp: {} as Record<string, number> };
  const problems: string[] = [];
  for (let i = 0; i < KILLS; i++) {
    const rnd = new Random(500 + i);
    const op: Op = ['backup', 'backup', 'backup', 'prune', 'prune', 'repair index', 'replicate'][rnd.int(7)] as Op;
    tally.byOp[op] = (tally.byOp[op] ?? 0) + 1;
    let newBytes = 0;
    if (op === 'backup') {
      // New files in a folder of this round; rounds older than four are deleted, so prune has work.
      await fs.mkdir(path.join(source, `r${i}`));
      for (let f = 0; f < 3; f++) {
        const size = 1_000_000 + rnd.int(2_000_000);
        await fs.writeFile(path.join(source, `r${i}`, `f${f}.bin`), randomStream(i * 10 + f, size));
        newBytes += size;
      }
      await fs.rm(path.join(source, `r${i - 4}`), { recursive: true, force: true });
    } else if (op === 'prune') {
      const forgotten = JSON.parse(strata(['forget', '--keep-last', '3', '--json'], env).stdout);
      for (const g of forgotten.groups) for (const r of g.remove) expected.delete(r.id);
    }
    const before = await packBytes(repo);
    const packsBefore = (await packFiles(repo)).length;
    const copiedBefore = (await packFiles(copy)).length;
    const args = op === 'backup' ? ['backup', source, '--json'] : op === 'prune' ? ['prune', '--grace', '0s', '--max-unused', '0%']
      : op === 'replicate' ? ['replicate', '--to', copy, '--json'] : ['repair', 'index'];
    // Where it is killed: at once, once it holds its lock, or part-way into its work.
    const point = rnd.int(4);
    const at = point === 0 ? 'at start' : point === 1 ? 'holding its lock' : op === 'backup' ? `after ${Math.round(rnd.int(100))}% of its packs`
      : op === 'prune' ? (point === 2 ? 'once it scheduled deletions' : 'once it deleted a pack') : op === 'replicate' ? 'once a pack was copied' : 'part-way';
    const share = point >= 2 && op === 'backup' ? Number(at.match(/(\d+)%/)![1]) / 100 : 0;
    const run = strataAsync(args, env);
    let finished = false;
    void run.done.then(() => { finished = true; });
    const reached = async (): Promise<boolean> => {
      if (point === 0) return true;
      if (point === 1 || op === 'repair index') return (await count(path.join(repo, 'locks'))) > 0;
      if (op === 'backup') return (await packBytes(repo)) >= before + share * newBytes;
      if (op === 'replicate') return (await packFiles(copy)).length > copiedBefore;
      if (point === 2) return (await count(path.join(repo, 'deletions'))) > 0;
      return (await packFiles(repo)).length < packsBefore;
    };
    await until(async () => finished || await reached(), 30_000, 2);
    run.child.kill('SIGKILL');
    const result = await run.done;
    if (result.signal === 'SIGKILL') tally.killed++;
    else tally.finishedFirst++;
    const what = `kill ${i} (${op}, ${at})`;

    // The repository as the killed process left it.
    const reader = await Repository.open(new LocalBackend(repo), { password: 'pw', cacheDir: path.join(dir, `reader-${i}`), readOnly: true });
    try {
      const checked = await check(reader);
      if (checked.problems.length) problems.push(`${what}: check: ${checked.problems.map((p) => `${p.object}: ${p.message}`).join('; ')}`);
      for (const [id, files] of expected) {
        const snapshot = await reader.loadSnapshot(id).catch(() => undefined);
        if (!snapshot) {
          problems.push(`${what}: snapshot ${id.slice(0, 8)} is gone`);
          continue;
        }
        let read = 0;
        for await (const { path: rel, entry } of walkTree(reader, await resolvePath(reader, snapshot.tree, source))) {
          if (entry.type !== 'file') continue;
          const parts: Buffer[] = [];
          for await (const chunk of fileChunks(reader, entry)) parts.push(chunk);
          if (digest(Buffer.concat(parts)) !== files.get(path.join(source, rel.toString()))) problems.push(`${what}: ${id.slice(0, 8)}:${rel} reads back wrong`);
          read++;
        }
        if (read !== files.size) problems.push(`${what}: snapshot ${id.slice(0, 8)} holds ${read} files, not ${files.size}`);
      }
    } finally {
      await reader.close();
    }
    if (op === 'replicate' && await fs.stat(path.join(copy, 'config')).catch(() => undefined)) {
      // The copy as the killed run left it: what snapshots it holds have their data.
      const replica = await Repository.open(new LocalBackend(copy), { password: 'pw', cacheDir: path.join(dir, `replica-${i}`), readOnly: true });
      try {
        const checked = await check(replica);
        if (checked.problems.length) problems.push(`${what}: the copy: ${checked.problems.map((p) => `${p.object}: ${p.message}`).join('; ')}`);
      } finally {
        await replica.close();
      }
    }
    const inCopy = new Set((await packFiles(copy)).map((f) => path.basename(f)));
    const toCopy = (await packFiles(repo)).filter((f) => !inCopy.has(path.basename(f))).length;

    // The same operation again, to the end.
    const durable = (await packBytes(repo)) - before;
    const again = strata(args, env);
    if (again.code !== 0) problems.push(`${what}: the next run failed (${again.code}): ${again.stderr}`);
    else if (op === 'backup') {
      const added = await backedUp(again.stdout);
      // Random data: one copy is newBytes plus seals and trees. What the killed run made durable is not stored again.
      if (added + Math.max(0, durable) > newBytes * 1.03 + 512 * 1024) problems.push(`${what}: ${added} bytes added after ${durable} made durable, for ${newBytes} new`);
    } else if (op === 'replicate') {
      const copied = JSON.parse(again.stdout).packsCopied;
      if (copied > toCopy) problems.push(`${what}: ${copied} packs copied again where ${toCopy} were missing`);
    }
    if (await count(path.join(repo, 'locks'))) problems.push(`${what}: a lock is left after the next run`);
    if (op === 'replicate' && await count(path.join(copy, 'locks'))) problems.push(`${what}: a lock is left in the copy after the next run`);
    if (await count(path.join(repo, 'tmp'))) problems.push(`${what}: partial files are left in tmp/ after the next run`);
  }
  t.comment(`fault suite, kill -9: ${KILLS} runs, ${tally.killed} killed mid-way, ${tally.finishedFirst} finished before the kill point; ` +
    `${Object.entries(tally.byOp).map(([op, n]) => `${n} ${op}`).join(', ')}; ${problems.length} problems`);
  t.same(problems, [], 'after every kill the repository checks out, keeps every snapshot whole, and the next run completes');
  t.ok(tally.killed >= KILLS * 0.8, `most runs were killed mid-way (${tally.killed})`);
  t.equal(strata(['check', '--read-data'], env).code, 0, 'and in the end every byte reads back');
});
