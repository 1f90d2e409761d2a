/**
 * Continuous capture with a real watcher on real folders: every kind of change
 * reaches a snapshot within the configured window, and a restart catches what
 * happened while the service was down.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { parseConfig } from '../../src/sync/service-config.js';
import { CaptureService, type Log } from '../../src/sync/service.js';
import { resolvePath, walkTree } from '../../src/sync/tree-walk.js';
import { newRepository } from '../kit/repo.js';
import { tempDir } from '../kit/tmp.js';

const quiet: Log = { info() {}, warn() {}, error() {} };

async function setup(t: Parameters<typeof tempDir>[0]) {
  const dir = tempDir(t);
  const source = path.join(dir, 'share');
  await fs.mkdir(path.join(source, 'docs'), { recursive: true });
  await fs.writeFile(path.join(source, 'docs', 'a.txt'), 'a');
  await fs.writeFile(path.join(source, 'old.txt'), 'old');
  const { repo } = await newRepository(t);
  const config = parseConfig({ repository: 'unused', sources: [{ path: source }], settleSeconds: 0.2, minIntervalSeconds: 0.5 }, 'test');
  const start = async () => {
    const service = await CaptureService.start(repo, config, quiet, path.join(dir, 'status.json'));
    t.teardown(() => service.stop());
    return service;
  };
  /** The files of the newest snapshot, as "path=content" (folders as "path/"). */
  const latest = async (): Promise<string[]> => {
    const snaps = await repo.listSnapshots();
    if (!snaps.length) return [];
    const out: string[] = [];
    for await (const { path: p, entry } of walkTree(repo, await resolvePath(repo, snaps.at(-1)!.snapshot.tree, source))) {
      out.push(entry.type === 'dir' ? `${p}/` : entry.type === 'file' ? `${p}=${(await repo.loadBlob('data', entry.chunks![0]).catch(() => Buffer.alloc(0))).toString()}` : `${p}@`);
    }
    return out.sort();
  };
  const waitFor = async (want: string[], ms = 8000): Promise<string[]> => {
    const deadline = Date.now() + ms;
    let got: string[] = [];
    while (Date.now() < deadline) {
      got = await latest();
      if (JSON.stringify(got) === JSON.stringify([...want].sort())) return got;
      await new Promise((r) => setTimeout(r, 100));
    }
    return got;
  };
  return { dir, source, repo, start, latest, waitFor };
}

t.test('creations, edits, renames and deletions, deep and many at once, reach a snapshot within seconds', async (t) => {
  const { source, repo, start, waitFor } = await setup(t);
  const service = await start();
  t.same(await waitFor(['docs/', 'docs/a.txt=a', 'old.txt=old']), ['docs/', 'docs/a.txt=a', 'old.txt=old'], 'the first snapshot at start');

  await fs.writeFile(path.join(source, 'docs', 'a.txt'), 'a2');
  await fs.writeFile(path.join(source, 'new.txt'), 'new');
  await fs.rename(path.join(source, 'old.txt'), path.join(source, 'renamed.txt'));
  await fs.mkdir(path.join(source, 'x', 'y', 'z'), { recursive: true });
  await fs.writeFile(path.join(source, 'x', 'y', 'z', 'deep.txt'), 'deep');
  const want = ['docs/', 'docs/a.txt=a2', 'new.txt=new', 'renamed.txt=old', 'x/', 'x/y/', 'x/y/z/', 'x/y/z/deep.txt=deep'];
  t.same(await waitFor(want), want, 'edit, create, rename and a deep new folder');

  const many = Array.from({ length: 200 }, (_, i) => `bulk/f${String(i).padStart(3, '0')}.txt`);
  await fs.mkdir(path.join(source, 'bulk'));
  await Promise.all(many.map((f) => fs.writeFile(path.join(source, f), f)));
  await fs.rm(path.join(source, 'x'), { recursive: true });
  await fs.rm(path.join(source, 'new.txt'));
  const after = ['bulk/', ...many.map((f) => `${f}=${f}`), 'docs/', 'docs/a.txt=a2', 'renamed.txt=old'];
  t.same(await waitFor(after), after, '200 files at once, a deleted folder and file');

  const snaps = await repo.listSnapshots();
  const last = snaps.at(-1)!.snapshot.summary;
  t.ok(last.filesRead <= 200, `journaled capture read ${last.filesRead} files, not the whole share again`);
  t.equal(last.files, 202, 'and still counts every file');
  const status = service.status().sources[0];
  t.equal(status.watching, true);
  t.equal(status.lastSnapshot?.id, snaps.at(-1)!.id);
});

t.test('after a restart the first capture walks everything and catches changes made while stopped', async (t) => {
  const { source, start, waitFor } = await setup(t);
  const first = await start();
  await waitFor(['docs/', 'docs/a.txt=a', 'old.txt=old']);
  await first.stop();
  await fs.writeFile(path.join(source, 'docs', 'a.txt'), 'while down');
  await start();
  t.same(await waitFor(['docs/', 'docs/a.txt=while down', 'old.txt=old']), ['docs/', 'docs/a.txt=while down', 'old.txt=old']);
});

t.test('no snapshot when a walk finds nothing changed', async (t) => {
  const { source, repo, start, waitFor } = await setup(t);
  await start();
  await waitFor(['docs/', 'docs/a.txt=a', 'old.txt=old']);
  const before = (await repo.listSnapshots()).length;
  await fs.utimes(path.join(source, 'docs'), new Date(), new Date()); // an event, but no change to the content
  await new Promise((r) => setTimeout(r, 1500));
  const after = (await repo.listSnapshots()).length;
  t.ok(after - before <= 1, 'at most the folder time change is recorded');
});

t.test('a source that is missing is reported and the other sources go on', async (t) => {
  const { dir, source, repo, waitFor } = await setup(t);
  const config = parseConfig({ repository: 'unused', sources: [{ path: path.join(dir, 'missing') }, { path: source }], settleSeconds: 0.2, minIntervalSeconds: 0.5 }, 'test');
  const service = await CaptureService.start(repo, config, quiet, path.join(dir, 'status.json'));
  t.teardown(() => service.stop());
  t.same(await waitFor(['docs/', 'docs/a.txt=a', 'old.txt=old']), ['docs/', 'docs/a.txt=a', 'old.txt=old']);
  const missing = service.status().sources[0];
  t.match(missing.lastError?.message, /does not exist|cannot watch/);
});

t.test('config errors name the key', async (t) => {
  t.throws(() => parseConfig({ repository: '/r', sources: [{ path: '/s' }], setleSeconds: 2 }, 'strata.json'), { code: 'USAGE', message: /unknown key "setleSeconds"/ });
  t.throws(() => parseConfig({ repository: '/r', sources: [{ path: '/s', tags: 'x' }] }, 'strata.json'), { message: /sources\.0\.tags/ });
  t.throws(() => parseConfig({ repository: '/r', sources: [] }, 'strata.json'), { message: /sources/ });
});
