/**
 * Continuous capture with a real watcher on real folders: every kind of change
 * reaches a snapshot within the configured window, a restart catches what
 * happened while the service was down, retention thins the snapshots and
 * frees their space while captures go on, and second copies follow.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { LocalBackend } from '../../src/store/backend/local.js';
import { packObjectName } from '../../src/store/pack.js';
import { Repository } from '../../src/store/repository.js';
import { check } from '../../src/sync/check.js';
import { parseConfig } from '../../src/sync/service-config.js';
import { CaptureService, type Log } from '../../src/sync/service.js';
import type { VerifyStatus } from '../../src/sync/verify.js';
import { resolvePath, walkTree } from '../../src/sync/tree-walk.js';
import { damageBeyondParity, packBytes } from '../kit/packs.js';
import { Random } from '../kit/random.js';
import { newRepository, PASSWORD } from '../kit/repo.js';
import { tempDir } from '../kit/tmp.js';
import { until } from '../kit/wait.js';

const quiet: Log = { info() {}, warn() {}, error() {} };

async function setup(t: Parameters<typeof tempDir>[0], more: object = {}) {
  const dir = tempDir(t);
  const source = path.join(dir, 'share');
  await fs.mkdir(path.join(source, 'docs'), { recursive: true });
  await fs.writeFile(path.join(source, 'docs', 'a.txt'), 'a');
  await fs.writeFile(path.join(source, 'old.txt'), 'old');
  const { repo } = await newRepository(t);
  const config = parseConfig({ repository: 'unused', sources: [{ path: source }], settleSeconds: 0.2, minIntervalSeconds: 0.5, ...more }, 'test');
  const start = async (log = quiet) => {
    const service = await CaptureService.start(repo, config, log, path.join(dir, 'status.json'));
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
  const withCopy = (replica: object) => parseConfig({ repository: '/r', sources: [{ path: '/s' }], replicas: [{ to: 's3:http://127.0.0.1:1/b', ...replica }] }, 'strata.json');
  t.match(withCopy({}).replicas[0], { mirrorDeletions: false, appendOnly: false }, 'a copy receives no deletions by default');
  t.match(withCopy({ objectLock: { mode: 'COMPLIANCE', days: 30 } }).replicas[0], { objectLock: { mode: 'COMPLIANCE', days: 30 } });
  t.throws(() => withCopy({ mirrorDeletions: true, objectLock: { mode: 'GOVERNANCE', days: 30 } }), { message: /replicas\.0: mirrorDeletions removes from the copy, which appendOnly and objectLock forbid/ });
  t.throws(() => withCopy({ objectLock: { mode: 'governance', days: 30 } }), { message: /replicas\.0\.objectLock\.mode/ });
  t.throws(() => withCopy({ to: '/mnt/spare', objectLock: { mode: 'GOVERNANCE', days: 30 } }), { message: /objectLock is for copies on S3/ });
});

t.test('retention forgets what its policy does not keep, and a prune frees the space while a capture goes ahead', async (t) => {
  // A pass every 0.6 s, a prune in each (its grace period long enough to capture during it).
  const { source, repo, start, waitFor, latest, dir } = await setup(t, { retention: { keep: { last: 2 }, everyMinutes: 0.01, prune: { everyHours: 1e-6, graceSeconds: 3 } } });
  const logged: string[] = [];
  const log: Log = { info: (_, m) => logged.push(m), warn: (_, m) => logged.push(`warning: ${m}`), error: (_, m) => logged.push(`error: ${m}`) };
  const service = await start(log);
  await waitFor(['docs/', 'docs/a.txt=a', 'old.txt=old']);
  for (let i = 0; i < 4; i++) {
    await fs.writeFile(path.join(source, `v${i}.bin`), new Random(i).bytes(200_000));
    await until(async () => (await repo.listSnapshots()).some((r) => r.snapshot.summary.files === 3 + i));
  }
  const before = await packBytes(repo.backend.location);
  await fs.rm(path.join(source, 'v0.bin'));
  t.ok(await until(async () => (await repo.listSnapshots()).length === 2, 10_000), 'the service kept the last 2 snapshots');
  t.ok(await until(() => service.status().retention?.running === 'prune', 10_000), 'and began a prune');
  await fs.writeFile(path.join(source, 'during-prune.txt'), 'kept');
  t.ok(await until(async () => (await latest()).includes('during-prune.txt=kept')), 'a change during the prune reached a snapshot');
  t.equal(service.status().retention?.running, 'prune', 'before the prune was done');
  t.ok(await until(async () => await packBytes(repo.backend.location) < before - 150_000, 15_000), 'the prune freed the space of the forgotten file');
  t.ok(service.status().retention?.lastPrune, 'and says so in the status');
  await service.idle();
  const status = JSON.parse(await fs.readFile(path.join(dir, 'status.json'), 'utf8'));
  const pass = status.retention.lastForget.sources[0];
  t.equal(pass.kept, 2, 'the status says what was kept');
  t.equal(pass.keptBy.last, 2, 'and by which rule');
  t.ok(logged.some((m) => /^retention forgot \d+ snapshots/.test(m)), 'the log says what was forgotten');
  t.notOk(logged.some((m) => m.startsWith('error')), 'no errors');
  t.same((await check(repo, { readData: true })).problems, [], 'the repository checks clean, data read');
  t.ok((await latest()).some((f) => f.startsWith('v3.bin=')), 'and the newest snapshot has its files');
});

t.test('a retention pass that fails is an error in the log and the status', async (t) => {
  const { repo, start, waitFor, dir } = await setup(t, { retention: { keep: { last: 5 }, everyMinutes: 0.01 } });
  const errorsLogged: string[] = [];
  await waitForFirstSnapshotThenBreak();
  const service = await start({ ...quiet, error: (_, m) => errorsLogged.push(m) });
  t.ok(await until(() => service.status().retention?.lastError !== undefined, 10_000), 'the failure is in the status');
  t.match(service.status().retention?.lastError?.message, /retention failed: prune stopped, nothing was deleted/);
  t.match(errorsLogged[0], /retention failed/, 'and logged as an error');
  await service.idle(); // the pass's last status write
  const saved = JSON.parse(await fs.readFile(path.join(dir, 'status.json'), 'utf8'));
  t.match(saved.retention.lastError.message, /prune stopped/, 'and written for `strata status`');

  /** A first snapshot, then its top tree's pack removed: marking cannot read it, so prune must stop. */
  async function waitForFirstSnapshotThenBreak() {
    const first = await start();
    await waitFor(['docs/', 'docs/a.txt=a', 'old.txt=old']);
    await first.stop();
    const tree = (await repo.listSnapshots()).at(-1)!.snapshot.tree;
    await repo.backend.remove(packObjectName(repo.locate(tree)!.pack));
    await fs.rm(path.join(dir, 'status.json')); // a first run for the new service: its prune is due at once
  }
});

t.test('rolling verification reads one part per pass, every pack once per round, and reports damage as an error', async (t) => {
  // A pass every 0.72 s, each reading half of the packs.
  const { source, repo, start, dir } = await setup(t, { retention: null, verify: { everyHours: 0.0002, parts: 2 } });
  for (let i = 0; i < 6; i++) await fs.writeFile(path.join(source, `f${i}.bin`), new Random(50 + i).bytes(3_000_000));
  const logged: string[] = [];
  const service = await start({ ...quiet, error: (_, m) => logged.push(m) });
  t.ok(await until(() => service.status().verify?.lastPass?.part === 2, 15_000), 'a second pass read the second part');
  const packs = [];
  for await (const p of repo.listPacks()) packs.push(p);
  const status = service.status().verify!;
  t.equal(status.nextPart, 1, 'and the next round begins again at part 1');
  t.equal(status.lastPass!.problems, 0);
  t.same(logged, []);

  // Damage in a data pack, more than its parity heals: the pass over its part names it as an error.
  const victim = packs.sort((a, b) => b.size - a.size)[0];
  const file = path.join(repo.backend.location, packObjectName(victim.id));
  const bytes = await damageBeyondParity(file, 1000);
  // Passes come every 0.72 s: the one that found it is caught as it shows.
  let found: VerifyStatus | undefined;
  t.ok(await until(() => {
    const now = service.status().verify!;
    if (now.lastPass?.problems) found = now;
    return found !== undefined;
  }, 15_000), 'a pass finds the damage');
  t.match(found!.lastPass!.damaged[0], { object: `pack ${victim.id}`, message: /no longer match its name.*cannot be healed/, filesAffected: Number });
  t.ok(found!.lastPass!.damaged[0]!.filesAffected >= 1, 'with the files it costs');
  t.match(found!.lastError?.message, /^1 problem in part [12] of 2/);
  t.match(logged[0], new RegExp(`verification found damage: pack ${victim.id}`));
  await service.idle();
  const saved = JSON.parse(await fs.readFile(path.join(dir, 'status.json'), 'utf8'));
  t.match(saved.verify.lastError?.message, /^1 problem in part/, 'written for `strata status`, and kept by clean passes over the other part');

  await fs.writeFile(`${file}.mended`, bytes); // mended (as from a second copy), in one step
  await fs.rename(`${file}.mended`, file);
  t.ok(await until(() => service.status().verify!.lastError === undefined, 15_000), 'once its part reads clean, the error is cleared');
});

t.test('replication keeps a second copy up to date beside the captures; a copy it cannot write is an error in the status', async (t) => {
  const spare = tempDir(t);
  const copyDir = path.join(spare, 'copy');
  await fs.writeFile(path.join(spare, 'a-file'), 'not a folder');
  const broken = path.join(spare, 'a-file', 'copy');
  const { source, repo, start } = await setup(t, {
    retention: null, verify: null, cacheDir: path.join(spare, 'cache'),
    replicas: [{ to: copyDir, everyMinutes: 0.005 }, { to: broken, everyMinutes: 0.005 }],
  });
  const logged: string[] = [];
  const service = await start({ ...quiet, error: (_, m) => logged.push(m) });
  const copied = async (): Promise<number> => (await fs.readdir(path.join(copyDir, 'snapshots')).catch(() => [])).length;
  t.ok(await until(async () => (await copied()) >= 1, 20_000), 'the first snapshot reaches the copy');
  await fs.writeFile(path.join(source, 'new.txt'), 'new');
  t.ok(await until(async () => (await repo.listSnapshots()).length >= 2 && (await copied()) === (await repo.listSnapshots()).length, 20_000),
    'a later snapshot follows it');
  const [good, bad] = service.status().replicas!;
  t.match(good, { to: copyDir, lastSuccess: { snapshotsCopied: Number }, copiedUpTo: String });
  t.equal(good!.lastError, undefined);
  t.match(bad!.lastError?.message, /^replication to .*a-file\/copy failed/, 'the copy that cannot be written has its error');
  t.ok(logged.some((m) => /replication to .*a-file\/copy failed/.test(m)), 'logged as an error');

  const backupCopy = await Repository.open(new LocalBackend(copyDir), { password: PASSWORD, cacheDir: path.join(spare, 'cache-copy'), readOnly: true });
  t.teardown(() => backupCopy.close());
  t.equal((await check(backupCopy, { readData: true })).problems.length, 0, 'the copy opens with the same password and checks clean');
});
