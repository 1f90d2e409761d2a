/**
 * repair snapshots: a folder whose tree is lost is left out with everything in
 * it, the counts follow, and a snapshot whose top tree is lost is reported as
 * lost (nothing of it can be saved), never rewritten.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { packObjectName } from '../../src/store/pack.js';
import { capture } from '../../src/sync/capture.js';
import { check } from '../../src/sync/check.js';
import { repairSnapshots } from '../../src/sync/repair.js';
import { resolvePath, walkTree } from '../../src/sync/tree-walk.js';
import { newRepository } from '../kit/repo.js';

t.test('a lost folder tree: the folder is left out, named, the counts follow; a lost top tree is reported', async (t) => {
  const { repo: writer, dir, reopen } = await newRepository(t);
  const source = path.join(dir, 'share');
  await fs.mkdir(path.join(source, 'old', 'deeper'), { recursive: true });
  for (const f of ['a', 'b', 'deeper/c']) await fs.writeFile(path.join(source, 'old', f), f);
  const first = await capture(writer, { paths: [source] });
  await fs.mkdir(path.join(source, 'new'));
  await fs.writeFile(path.join(source, 'new', 'd'), 'd');
  const second = await capture(writer, { paths: [source], parent: first });
  // The first backup's trees (old/ among them, reused by the second) go; the second's new root stays.
  const [firstTrees, secondTrees] = [writer.locate(first.snapshot.tree)!.pack, writer.locate(second.snapshot.tree)!.pack];
  t.not(secondTrees, firstTrees, 'the second root is in a pack of its own');
  await writer.backend.remove(packObjectName(firstTrees));
  const repo = await reopen(); // a process that has not read those trees before
  t.teardown(() => repo.close());

  const outcomes = await repairSnapshots(repo, {});
  const byId = new Map(outcomes.map((o) => [o.id, o]));
  t.equal(byId.get(first.id)?.state, 'lost');
  const fixed = byId.get(second.id)!;
  t.equal(fixed.state, 'repaired');
  t.match(fixed.leftOut, [{ path: `${source}/old/`, message: /folder tree [0-9a-f]{64} cannot be read/ }]);
  const repaired = (await repo.listSnapshots()).find((s) => s.id === fixed.repaired)!;
  t.equal(repaired.snapshot.summary.files, second.snapshot.summary.files - 3, 'the three files under old/ are counted out');
  t.equal(repaired.snapshot.summary.dirs, second.snapshot.summary.dirs - 2, 'and its two folders');
  const names: string[] = [];
  for await (const { path: p } of walkTree(repo, await resolvePath(repo, repaired.snapshot.tree, source))) names.push(p.toString());
  t.same(names.sort(), ['new', 'new/d']);
  const checked = await check(repo);
  t.ok(checked.problems.every((p) => p.snapshots.every((id) => id !== fixed.repaired)), 'the repaired snapshot is whole');
});

t.test('a repair is not made twice, but made again when it would leave out something else', async (t) => {
  const { repo: writer, dir, reopen } = await newRepository(t);
  const source = path.join(dir, 'share');
  let parent;
  const trees: string[] = [];
  for (const folder of ['old', 'mid', 'new']) {
    await fs.mkdir(path.join(source, folder), { recursive: true });
    await fs.writeFile(path.join(source, folder, 'f'), folder);
    parent = await capture(writer, { paths: [source], parent });
    trees.push(writer.locate(parent.snapshot.tree)!.pack); // each capture's trees in a pack of their own
  }
  const last = parent!.id;
  await writer.backend.remove(packObjectName(trees[0]!));
  let repo = await reopen();
  const [first] = await repairSnapshots(repo, { ids: [last] });
  t.match(first, { state: 'repaired', leftOut: [{ path: `${source}/old/` }] });
  const [again] = await repairSnapshots(repo, { ids: [last] });
  t.equal(again!.repaired, first!.repaired, 'run again: the earlier repair is the answer');
  t.equal((await repo.listSnapshots()).length, 4, 'and no second copy of it is written');
  await repo.close();

  await writer.backend.remove(packObjectName(trees[1]!));
  repo = await reopen();
  t.teardown(() => repo.close());
  const [worse] = await repairSnapshots(repo, { ids: [last] });
  t.not(worse!.repaired, first!.repaired, 'with more lost, a new repair');
  t.same(worse!.leftOut.map((l) => l.path).sort(), [`${source}/mid/`, `${source}/old/`]);
  t.equal((await repo.listSnapshots()).length, 5);
});
