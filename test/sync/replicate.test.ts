/**
 * Replication between two folders (the S3 sides are in test/cli/s3.test.ts): the
 * copy is a repository of its own with the same password, a second run after a
 * small backup moves only what is new, a kill -9 mid-way loses nothing and never
 * leaves a snapshot without its data, and forgotten snapshots stay on the copy
 * unless deletions are mirrored; an append-only copy refuses every removal.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { appendOnly } from '../../src/store/backend/append-only.js';
import { LocalBackend } from '../../src/store/backend/local.js';
import { Repository } from '../../src/store/repository.js';
import { replicate } from '../../src/sync/replicate.js';
import { strata, strataAsync } from '../kit/cli.js';
import { FaultyBackend } from '../kit/faulty.js';
import { damageBeyondParity, largestPack, packFiles } from '../kit/packs.js';
import { randomStream } from '../kit/random.js';
import { freePort } from '../kit/port.js';
import { tempDir } from '../kit/tmp.js';
import { until } from '../kit/wait.js';

function setup(t: Parameters<typeof tempDir>[0]) {
  const dir = tempDir(t);
  const env = { STRATA_REPOSITORY: path.join(dir, 'repo'), STRATA_PASSWORD: 'pw', STRATA_CACHE_DIR: path.join(dir, 'cache') };
  const copy = path.join(dir, 'copy');
  return { dir, env, copy, copyEnv: { ...env, STRATA_REPOSITORY: copy, STRATA_CACHE_DIR: path.join(dir, 'cache-copy') }, source: path.join(dir, 'share') };
}

/** Every object under a repository folder with its size (the objects a copy must hold). */
async function objects(root: string, under = ''): Promise<Map<string, number>> {
  const found = new Map<string, number>();
  for (const e of await fs.readdir(path.join(root, under), { withFileTypes: true }).catch(() => [])) {
    const name = under ? `${under}/${e.name}` : e.name;
    if (e.isDirectory()) { if (name !== 'tmp' && name !== 'locks') for (const [n, s] of await objects(root, name)) found.set(n, s); }
    else found.set(name, (await fs.stat(path.join(root, name))).size);
  }
  return found;
}

t.test('a copy on another disk: complete, the same password, incremental, keeps what was forgotten unless asked to mirror', async (t) => {
  const { env, copy, copyEnv, source, dir } = setup(t);
  await fs.mkdir(path.join(source, 'docs'), { recursive: true });
  for (let i = 0; i < 6; i++) await fs.writeFile(path.join(source, `f${i}.bin`), randomStream(i, 3_000_000));
  await fs.writeFile(path.join(source, 'docs', 'a.txt'), 'alpha');
  t.equal(strata(['init'], env).code, 0);
  const first = JSON.parse(strata(['backup', source, '--json'], env).stdout);

  const run1 = strata(['replicate', '--to', copy, '--json'], env);
  t.equal(run1.code, 0, run1.stderr);
  const r1 = JSON.parse(run1.stdout);
  t.match(r1, { created: true, listedTarget: true, snapshotsCopied: 1 });
  t.same(await objects(copy), await objects(env.STRATA_REPOSITORY), 'the copy holds every object of the source');
  const restored = strata(['restore', `latest:${source}`, '--target', path.join(dir, 'out')], copyEnv);
  t.equal(restored.code, 0, restored.stderr);
  t.ok((await fs.readFile(path.join(dir, 'out', 'f3.bin'))).equals(await fs.readFile(path.join(source, 'f3.bin'))), 'it restores with the same password, without the source');
  t.equal(strata(['check', '--read-data'], copyEnv).code, 0, 'and checks clean');

  // A small change: the second run moves the new packs, their parity and the record, nothing more.
  const before = await objects(env.STRATA_REPOSITORY);
  await fs.writeFile(path.join(source, 'docs', 'b.txt'), 'beta');
  await fs.writeFile(path.join(source, 'g.bin'), randomStream(50, 500_000));
  const second = JSON.parse(strata(['backup', source, '--json'], env).stdout);
  const added = [...(await objects(env.STRATA_REPOSITORY))].filter(([n]) => !before.has(n)).reduce((a, [, s]) => a + s, 0);
  const r2 = JSON.parse(strata(['replicate', '--to', copy, '--json'], env).stdout);
  t.match(r2, { created: false, listedTarget: false, snapshotsCopied: 1 }, 'what is known of the copy is trusted: it is not listed again');
  t.ok(r2.bytesCopied <= added * 1.05, `moves ${r2.bytesCopied} bytes for the ${added} the backup added`);
  t.equal(strata(['dump', second.id.slice(0, 8), path.join(source, 'docs', 'b.txt')], copyEnv).stdout, 'beta');

  // Forget and prune the first snapshot on the source: the copy receives no deletion (a mistake or an attack stays on the primary).
  t.equal(strata(['forget', first.id, '--prune', '--grace', '0s', '--max-unused', '0%'], env).code, 0);
  const kept = strata(['replicate', '--to', copy, '--json'], env);
  t.equal(kept.code, 0, kept.stderr);
  const r3 = JSON.parse(kept.stdout);
  t.match(r3, { snapshotsRemoved: 0, packsRemoved: 0, onlyOnCopy: { snapshots: 1 } }, 'the copy keeps the forgotten snapshot, and says so');
  t.ok(r3.onlyOnCopy.packs > 0, 'and the packs the prune removed from the source');
  t.match(strata(['replicate', '--to', copy], env).stdout, /the copy keeps what the source no longer has: 1 snapshot, \d+ packs? \(--mirror-deletions removes them\)/);
  const old = strata(['dump', first.id.slice(0, 8), path.join(source, 'docs', 'a.txt')], copyEnv);
  t.equal(old.stdout, 'alpha', 'the snapshot forgotten on the source still restores from the copy');
  t.equal(strata(['check', '--read-data'], copyEnv).code, 0);

  // Asked for, the copy mirrors the source.
  const r3m = JSON.parse(strata(['replicate', '--to', copy, '--mirror-deletions', '--json'], env).stdout);
  t.equal(r3m.snapshotsRemoved, 1, '--mirror-deletions: the forgotten snapshot leaves the copy');
  t.equal(r3m.packsRemoved, r3.onlyOnCopy.packs, 'and so do the pruned packs');
  t.same(r3m.onlyOnCopy, { snapshots: 0, packs: 0 });
  t.same([...(await objects(copy)).keys()].filter((n) => !n.startsWith('deletions/')).sort(),
    [...(await objects(env.STRATA_REPOSITORY)).keys()].filter((n) => !n.startsWith('deletions/')).sort(), 'the copy mirrors the source again');
  t.equal(strata(['check', '--read-data'], copyEnv).code, 0);
  const r4 = JSON.parse(strata(['replicate', '--to', copy, '--verify', '--json'], env).stdout);
  t.match(r4, { listedTarget: true, packsCopied: 0, snapshotsCopied: 0, bytesCopied: 0 }, '--verify lists the copy: nothing was missing');

  // A pack lost on the source (no prune scheduled it): the copy keeps what may be the last one of it.
  const [lost] = await packFiles(env.STRATA_REPOSITORY);
  await fs.rm(lost!);
  const r5 = JSON.parse(strata(['replicate', '--to', copy, '--mirror-deletions', '--json'], env).stdout);
  t.match(r5, { packsRemoved: 0, packsKeptLost: 1 }, 'a pack lost on the source stays on the copy, even when mirroring');
  await fs.access(path.join(copy, path.relative(env.STRATA_REPOSITORY, lost!)));

  // The copy's disk wiped (or swapped for another): what was known of it is not trusted, everything goes again.
  await fs.rm(copy, { recursive: true });
  await fs.mkdir(copy);
  const r6 = JSON.parse(strata(['replicate', '--to', copy, '--json'], env).stdout);
  t.match(r6, { created: true, listedTarget: true, snapshotsCopied: 1 });
  t.equal(strata(['check'], copyEnv).code, 15, 'the copy checks as the source does: the lost pack is missing there too, and named');
});

t.test('a pack damaged on the source is not copied: the run stops before any snapshot record, and says to heal it first', async (t) => {
  const { env, copy, source } = setup(t);
  await fs.mkdir(source, { recursive: true });
  await fs.writeFile(path.join(source, 'f.bin'), randomStream(70, 3_000_000));
  t.equal(strata(['init'], env).code, 0);
  t.equal(strata(['backup', source], env).code, 0);
  await damageBeyondParity(await largestPack(env.STRATA_REPOSITORY), 1000);
  const run = strata(['replicate', '--to', copy], env);
  t.equal(run.code, 15, run.stderr);
  t.match(run.stderr, /on the source is damaged .* `strata check --read-data` on the source heals it/);
  t.same(await fs.readdir(path.join(copy, 'snapshots')).catch(() => []), [], 'no snapshot record reached the copy');
});

t.test('killed mid-way: no snapshot without its data, and the next run completes without copying again what landed', async (t) => {
  const { env, copy, copyEnv, source } = setup(t);
  await fs.mkdir(source, { recursive: true });
  for (let i = 0; i < 12; i++) await fs.writeFile(path.join(source, `f${i}.bin`), randomStream(100 + i, 4_000_000));
  t.equal(strata(['init'], env).code, 0);
  t.equal(strata(['backup', source], env).code, 0);
  const total = (await packFiles(env.STRATA_REPOSITORY)).length;
  const killed = strataAsync(['replicate', '--to', copy, '--limit-upload', '8192'], env); // 8 MiB/s: a few seconds
  t.ok(await until(async () => (await packFiles(copy)).length >= 2, 20_000, 10), 'packs are landing');
  killed.child.kill('SIGKILL');
  await killed.done;
  const landed = (await packFiles(copy)).length;
  t.ok(landed < total, `killed with ${landed} of ${total} packs there`);
  t.same(await fs.readdir(path.join(copy, 'snapshots')).catch(() => []), [], 'no snapshot record before its packs');
  const again = strata(['replicate', '--to', copy, '--json'], env);
  t.equal(again.code, 0, again.stderr);
  const r = JSON.parse(again.stdout);
  t.equal(r.listedTarget, true, 'an interrupted run makes the next list the copy');
  t.equal(r.packsCopied, total - landed, 'only what had not landed is copied');
  t.equal(strata(['check', '--read-data'], copyEnv).code, 0, 'the copy is complete');
});

t.test('a copy that is another repository, or objects without a config, is refused', async (t) => {
  const { env, copy, copyEnv } = setup(t);
  t.equal(strata(['init'], env).code, 0);
  t.equal(strata(['init'], copyEnv).code, 0);
  const refused = strata(['replicate', '--to', copy], env);
  t.equal(refused.code, 11);
  t.match(refused.stderr, /holds another repository/);
});

t.test('parity written on the source after a pack was copied (by check --read-data) follows it to the copy', async (t) => {
  const { env, copy, source } = setup(t);
  await fs.mkdir(source, { recursive: true });
  await fs.writeFile(path.join(source, 'f.bin'), randomStream(80, 2_000_000));
  t.equal(strata(['init'], env).code, 0);
  t.equal(strata(['backup', source], env).code, 0);
  const pack = await largestPack(env.STRATA_REPOSITORY);
  const parityOf = (root: string) => path.join(root, 'parity', path.basename(pack).slice(0, 2), path.basename(pack));
  await fs.rm(parityOf(env.STRATA_REPOSITORY));
  t.equal(strata(['replicate', '--to', copy], env).code, 0);
  await t.rejects(fs.access(parityOf(copy)), 'the copy got the pack without parity');
  t.equal(strata(['check', '--read-data'], env).code, 0, 'check writes the lost parity on the source');
  const again = JSON.parse(strata(['replicate', '--to', copy, '--json'], env).stdout);
  t.match(again, { listedTarget: false, parityCopied: 1 }, 'the next run copies it without listing the copy');
  await fs.access(parityOf(copy));
});

t.test('a run out of time copies no record, and the next goes on from where it stopped', async (t) => {
  const { env, copy, source, dir } = setup(t);
  await fs.mkdir(source, { recursive: true });
  for (let i = 0; i < 4; i++) await fs.writeFile(path.join(source, `f${i}.bin`), randomStream(90 + i, 3_000_000));
  t.equal(strata(['init'], env).code, 0);
  t.equal(strata(['backup', source], env).code, 0);
  const repo = await Repository.open(new LocalBackend(env.STRATA_REPOSITORY), { password: 'pw', cacheDir: path.join(dir, 'cache-lib'), readOnly: true });
  t.teardown(() => repo.close());
  const stateFile = path.join(dir, 'state.json');
  const paused = await replicate(repo, new LocalBackend(copy), { stateFile, until: Date.now() });
  t.match(paused, { unfinished: true, packsCopied: 0, snapshotsCopied: 0 }, 'out of time at once: nothing but the keys and config');
  t.same(await fs.readdir(path.join(copy, 'snapshots')).catch(() => []), []);
  const done = await replicate(repo, new LocalBackend(copy), { stateFile });
  t.match(done, { unfinished: false, listedTarget: false, snapshotsCopied: 1 }, 'the next run goes on, trusting what it left');
  t.equal(done.packsCopied, (await packFiles(env.STRATA_REPOSITORY)).length);
});

t.test('an append-only copy: replication adds to it, and nothing removes or replaces what it holds', async (t) => {
  const { env, copy, copyEnv, source } = setup(t);
  await fs.mkdir(source, { recursive: true });
  await fs.writeFile(path.join(source, 'a.bin'), randomStream(110, 1_500_000));
  t.equal(strata(['init'], env).code, 0);
  const first = JSON.parse(strata(['backup', source, '--json'], env).stdout);
  t.equal(strata(['replicate', '--to', copy, '--append-only'], env).code, 0);
  await fs.writeFile(path.join(source, 'b.bin'), randomStream(111, 500_000));
  t.equal(strata(['backup', source], env).code, 0);
  const again = strata(['replicate', '--to', copy, '--append-only', '--json'], env);
  t.equal(again.code, 0, again.stderr);
  t.match(JSON.parse(again.stdout), { snapshotsCopied: 1 });
  t.same(await fs.readdir(path.join(copy, 'locks')), [], 'its own lock files come and go');

  const refused = strata(['replicate', '--to', copy, '--append-only', '--mirror-deletions'], env);
  t.equal(refused.code, 1);
  t.match(refused.stderr, /--mirror-deletions removes from the copy, which --append-only and --object-lock forbid/);
  const onFolder = strata(['replicate', '--to', copy, '--object-lock', 'governance:7'], env);
  t.equal(onFolder.code, 1);
  t.match(onFolder.stderr, /Object Lock is for copies on S3 .* is a folder: it takes --append-only/);

  // What a prune of the copy (or a compromised source through Strata) would do is refused, and the object stays.
  const guarded = appendOnly(new LocalBackend(copy));
  const record = `snapshots/${first.id}`;
  const held = await fs.readFile(path.join(copy, record));
  await t.rejects(guarded.remove(record), { code: 'BACKEND', message: new RegExp(`is append-only: ${record} is not removed`) });
  await t.rejects(guarded.save(record, Buffer.from('overwrite')), { code: 'BACKEND', message: /is there already and is not replaced/ });
  t.ok((await fs.readFile(path.join(copy, record))).equals(held), 'the record is untouched');
  await guarded.save('locks/probe', Buffer.from('x'));
  await guarded.remove('locks/probe');
  t.equal(strata(['check', '--read-data'], copyEnv).code, 0);
});

t.test('the copy going away mid-run, or losing a write: a clear error naming it, no record without its data, and the next run completes', async (t) => {
  const { env, copy, copyEnv, source, dir } = setup(t);
  await fs.mkdir(source, { recursive: true });
  for (let i = 0; i < 5; i++) await fs.writeFile(path.join(source, `f${i}.bin`), randomStream(120 + i, 3_000_000));
  t.equal(strata(['init'], env).code, 0);
  t.equal(strata(['backup', source], env).code, 0);
  const repo = await Repository.open(new LocalBackend(env.STRATA_REPOSITORY), { password: 'pw', cacheDir: path.join(dir, 'cache-lib'), readOnly: true });
  t.teardown(() => repo.close());
  const stateFile = path.join(dir, 'state.json');

  const unreachable = new FaultyBackend(new LocalBackend(copy)).fail('save', { after: 2, times: Infinity, names: /^packs\// });
  await t.rejects(replicate(repo, unreachable.backend, { stateFile }), { code: 'BACKEND', message: new RegExp(`save packs/\\S+ in ${copy} failed: connection reset`) });
  t.same(await fs.readdir(path.join(copy, 'snapshots')).catch(() => []), [], 'no snapshot record reached the copy');
  t.equal((await packFiles(copy)).length, 2, 'the packs that landed stay');

  const forgetful = new FaultyBackend(new LocalBackend(copy)).lose({ names: /^packs\// });
  await t.rejects(replicate(repo, forgetful.backend, { stateFile }), { code: 'BACKEND', message: new RegExp(`packs/\\S+ did not land in ${copy}: `) },
    'a lost write is the copy\'s failure, not a pack gone from the source');
  t.same(await fs.readdir(path.join(copy, 'snapshots')).catch(() => []), []);

  const landed = (await packFiles(copy)).length;
  const done = await replicate(repo, new LocalBackend(copy), { stateFile });
  t.match(done, { listedTarget: true, snapshotsCopied: 1 }, 'the next run lists the copy and completes it');
  t.equal(done.packsCopied, (await packFiles(env.STRATA_REPOSITORY)).length - landed, `without copying again the ${landed} packs that landed`);
  t.equal(strata(['check', '--read-data'], copyEnv).code, 0);
});

t.test('a copy on S3 that cannot be reached: a clear error naming it, and the source as it was', async (t) => {
  const { env, source } = setup(t);
  await fs.mkdir(source, { recursive: true });
  await fs.writeFile(path.join(source, 'a.txt'), 'alpha');
  t.equal(strata(['init'], env).code, 0);
  t.equal(strata(['backup', source], env).code, 0);
  const before = await objects(env.STRATA_REPOSITORY);
  const to = `s3:http://127.0.0.1:${await freePort()}/offsite/strata`; // nothing listens there
  const run = strata(['replicate', '--to', to], { ...env, AWS_ACCESS_KEY_ID: 'key', AWS_SECRET_ACCESS_KEY: 'secret' });
  t.equal(run.code, 17);
  t.match(run.stderr, new RegExp(`cannot reach ${to.replace(/[.]/g, '\\.')} \\(ECONNREFUSED\\) .*check the endpoint, the network and that the server runs`));
  t.same(await objects(env.STRATA_REPOSITORY), before, 'nothing on the source changed');
});
