/** The change journal on a real folder: what it marks, and what makes the next capture a full walk. */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ChangeJournal, unchangedFolders } from '../../src/sync/journal.js';
import { tempDir } from '../kit/tmp.js';

t.test('a change marks its folder and the folders above it as changed, nothing else', async (t) => {
  const root = tempDir(t);
  await fs.mkdir(path.join(root, 'a', 'b'), { recursive: true });
  await fs.mkdir(path.join(root, 'quiet'));
  let batches = 0;
  const journal = await ChangeJournal.start(root, () => { batches++; });
  t.teardown(() => journal.close());
  t.equal(journal.take().full, true, 'nothing is known before the first capture');
  await fs.writeFile(path.join(root, 'a', 'b', 'f.txt'), 'x');
  const deadline = Date.now() + 5000;
  while (journal.pending === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  t.ok(batches > 0);
  const changes = journal.take();
  t.equal(changes.full, false);
  const unchanged = unchangedFolders(changes)!;
  t.equal(unchanged(path.join(root, 'a', 'b')), false);
  t.equal(unchanged(path.join(root, 'a')), false, 'a folder above a change is walked');
  t.equal(unchanged(root), false);
  t.equal(unchanged(path.join(root, 'quiet')), true, 'a folder with no change is reused');
});

t.test('a watcher error (an overflow) makes the next capture a full walk; a failed capture gives its changes back', async (t) => {
  const root = tempDir(t);
  const journal = await ChangeJournal.start(root, () => {});
  t.teardown(() => journal.close());
  journal.take();
  journal.record(new Error('Events were dropped by the FSEvents client. File system must be re-scanned.'), []);
  t.equal(journal.take().full, true);
  t.equal(unchangedFolders({ full: true, dirty: new Set() }), undefined, 'a full walk reuses nothing');
  journal.record(null, [{ path: path.join(root, 'x') }]);
  const changes = journal.take();
  journal.giveBack(changes);
  t.ok(journal.take().dirty.has(path.join(root, 'x')), 'changes of a failed capture are kept');
});
