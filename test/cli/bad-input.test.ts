/**
 * Every bad input gets a clear message, a documented exit code, and loses
 * nothing: earlier snapshots stay intact and restorable.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { strata, strataAsync, testEnv } from '../kit/cli.js';
import { damageBeyondParity, largestPack, packBytes, packFiles } from '../kit/packs.js';
import { randomStream } from '../kit/random.js';
import { tempDir } from '../kit/tmp.js';
import { mountSkip } from '../kit/real.js';
import { until } from '../kit/wait.js';

function setup(t: Parameters<typeof tempDir>[0]) {
  const dir = tempDir(t);
  const env = { STRATA_REPOSITORY: path.join(dir, 'repo'), STRATA_PASSWORD: 'pw', STRATA_CACHE_DIR: path.join(dir, 'cache') };
  return { dir, env, source: path.join(dir, 'share'), repo: path.join(dir, 'repo') };
}

t.test('wrong password, not a repository, second init, missing password', async (t) => {
  const { env, dir } = setup(t);
  t.equal(strata(['init'], env).code, 0);
  const wrong = strata(['snapshots'], { ...env, STRATA_PASSWORD: 'nope' });
  t.equal(wrong.code, 12);
  t.match(wrong.stderr, /wrong password/);
  const notRepo = strata(['snapshots'], { ...env, STRATA_REPOSITORY: dir });
  t.equal(notRepo.code, 10);
  t.match(notRepo.stderr, /no Strata repository at .*strata init/);
  const again = strata(['init'], env);
  t.equal(again.code, 11);
  t.match(again.stderr, /already exists/);
  const noPw = strata(['snapshots'], { ...env, STRATA_PASSWORD: undefined });
  t.equal(noPw.code, 12);
  t.match(noPw.stderr, /give its password/);
  t.equal(strata(['snapshots'], { ...env, STRATA_REPOSITORY: undefined }).code, 1, 'no repository given is a usage error');
  const badCompression = strata(['init', '--compression', 'xz'], { ...env, STRATA_REPOSITORY: path.join(dir, 'other') });
  t.equal(badCompression.code, 1, 'an unknown compression is a usage error');
  t.match(badCompression.stderr, /lz4, zstd/, 'that names the choices');
});

t.test('an unreadable source file is named, the rest is saved, exit code 3', async (t) => {
  const { env, dir, source, repo } = setup(t);
  chmodSync(dir, 0o755);
  await fs.mkdir(source);
  await fs.writeFile(path.join(source, 'ok.txt'), 'readable');
  await fs.writeFile(path.join(source, 'secret.txt'), 'root only');
  chmodSync(path.join(source, 'secret.txt'), 0o600);
  t.equal(strata(['init'], env).code, 0);
  await fs.mkdir(path.join(dir, 'nobody-cache'));
  execFileSync('chown', ['-R', '65534:65534', repo, path.join(dir, 'nobody-cache')]);
  const asNobody = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath,
    path.resolve('bin/strata.js'), 'backup', source, '--json'], {
    env: { ...testEnv(), ...env, STRATA_CACHE_DIR: path.join(dir, 'nobody-cache'), HOME: dir }, encoding: 'utf8',
  });
  t.equal(asNobody.status, 3, asNobody.stderr);
  t.match(asNobody.stderr, /secret\.txt: .*EACCES/);
  const snap = JSON.parse(asNobody.stdout);
  t.same(snap.summary.errors.map((e: { path: string }) => e.path), [path.join(source, 'secret.txt')]);
  t.equal(strata(['dump', 'latest', path.join(source, 'ok.txt')], env).stdout, 'readable');
});

t.test('a pack damaged beyond its parity, or truncated, is named by check and restore; other files restore', async (t) => {
  const { env, dir, source, repo } = setup(t);
  await fs.mkdir(source);
  await fs.writeFile(path.join(source, 'victim.bin'), randomStream(1, 200_000));
  t.equal(strata(['init'], env).code, 0);
  t.equal(strata(['backup', source], env).code, 0);
  // A second snapshot whose packs stay intact.
  await fs.writeFile(path.join(source, 'other.txt'), 'intact');
  t.equal(strata(['backup', source], env).code, 0);
  const victimPack = await largestPack(repo); // the one with the 200 KB chunk
  await damageBeyondParity(victimPack, 5000);

  const checked = strata(['check', '--read-data'], env);
  t.equal(checked.code, 15);
  t.match(checked.stderr, new RegExp(`pack ${path.basename(victimPack)}`));
  t.match(checked.stderr, /affects 2 files or folders in 2 snapshots: [0-9a-f]{8}:.*victim\.bin, [0-9a-f]{8}:.*victim\.bin/);

  const target = path.join(dir, 'out');
  const restored = strata(['restore', `latest:${source}`, '--target', target], env);
  t.equal(restored.code, 3, 'partial restore');
  t.match(restored.stderr, /victim\.bin: .*failed authentication/);
  t.equal(await fs.readFile(path.join(target, 'other.txt'), 'utf8'), 'intact');

  await fs.truncate(victimPack, 1000);
  await fs.rm(env.STRATA_CACHE_DIR, { recursive: true });
  const truncated = strata(['check'], env);
  t.equal(truncated.code, 15);
  t.match(truncated.stderr, new RegExp(`pack ${path.basename(victimPack)}.*truncated`));
});

t.test('bit rot and a cut-off pack heal from parity: restore reads right and says so, check --read-data heals and rewrites lost parity', async (t) => {
  const { env, dir, source, repo } = setup(t);
  await fs.mkdir(source);
  await fs.writeFile(path.join(source, 'victim.bin'), randomStream(2, 3_000_000));
  t.equal(strata(['init', '--parity', '10'], env).code, 0);
  t.equal(strata(['backup', source], env).code, 0);
  const victimPack = await largestPack(repo);
  const intact = await fs.readFile(victimPack);
  const rotten = Buffer.from(intact);
  rotten[12_345] ^= 0x10;
  rotten[1_000_000] ^= 0x01;
  await fs.writeFile(victimPack, rotten);

  const target = path.join(dir, 'out');
  const restored = strata(['restore', `latest:${source}`, '--target', target], env);
  t.equal(restored.code, 0, restored.stderr);
  t.match(restored.stderr, new RegExp(`pack ${path.basename(victimPack)} healed from its parity \\(2 of \\d+ shards rebuilt\\) and written back`), 'restore says what it healed');
  t.ok((await fs.readFile(path.join(target, 'victim.bin'))).equals(await fs.readFile(path.join(source, 'victim.bin'))), 'and restores byte for byte');
  t.ok((await fs.readFile(victimPack)).equals(intact), 'the pack is whole again on disk');

  await fs.writeFile(victimPack, intact.subarray(0, intact.length - 50_000));
  const parityFile = path.join(repo, 'parity', path.basename(victimPack).slice(0, 2), path.basename(victimPack));
  const otherParity = (await fs.readdir(path.join(repo, 'parity'), { recursive: true })).map((f) => path.join(repo, 'parity', f))
    .find((f) => f.length === parityFile.length && f !== parityFile)!;
  await fs.rm(otherParity);
  const checked = strata(['check', '--read-data', '--json'], env);
  t.equal(checked.code, 0, checked.stderr);
  const report = JSON.parse(checked.stdout);
  t.match(report.healed, [{ pack: path.basename(victimPack), shards: Number, of: Number }], 'check --read-data heals the cut-off pack');
  t.equal(report.parityWritten, 1, 'and writes the parity that was lost');
  t.ok((await fs.readFile(victimPack)).equals(intact));
  await fs.access(otherParity);
  t.match(strata(['check', '--read-data'], env).stdout, /no problems$/m, 'a second check finds nothing to heal');
});

t.test('a deleted pack is named by check, with the files it affects; a backup of a source that still has them makes the snapshot whole', async (t) => {
  const { env, source, repo } = setup(t);
  await fs.mkdir(source);
  await fs.writeFile(path.join(source, 'lost.bin'), randomStream(4, 300_000));
  t.equal(strata(['init'], env).code, 0);
  t.equal(strata(['backup', source], env).code, 0);
  const victim = await largestPack(repo);
  await fs.rm(victim);
  const checked = strata(['check'], env);
  t.equal(checked.code, 15);
  t.match(checked.stderr, new RegExp(`pack ${path.basename(victim)}: missing from the repository \\(no prune deleted it\\)\n  affects 1 file or folder in 1 snapshot: [0-9a-f]{8}:.*lost\\.bin\n`));
  const [damaged] = JSON.parse(strata(['snapshots', '--json'], env).stdout);
  const again = JSON.parse(strata(['backup', source, '--json'], env).stdout);
  t.equal(again.summary.filesRead, 1, 'the file whose data was lost is read again, though unchanged');
  t.equal(strata(['check', '--read-data'], env).code, 0, 'and stored again: the earlier snapshot is whole too');
  const out = path.join(path.dirname(source), 'out');
  t.equal(strata(['restore', `${damaged.id}:${source}`, '--target', out], env).code, 0);
  t.ok((await fs.readFile(path.join(out, 'lost.bin'))).equals(await fs.readFile(path.join(source, 'lost.bin'))), 'byte for byte');
});

t.test('two swapped packs fail a plain check, named with their files in --json; a lost snapshot record is told apart', async (t) => {
  const { env, source, repo } = setup(t);
  await fs.mkdir(source);
  await fs.writeFile(path.join(source, 'a.bin'), randomStream(11, 300_000));
  t.equal(strata(['init'], env).code, 0);
  t.equal(strata(['backup', source], env).code, 0);
  await fs.writeFile(path.join(source, 'b.bin'), randomStream(12, 300_000));
  t.equal(strata(['backup', source, '--json'], env).code, 0);
  const sizes = await Promise.all((await packFiles(repo)).map(async (f) => ({ f, size: (await fs.stat(f)).size })));
  const [a, b] = sizes.sort((x, y) => y.size - x.size).map((s) => s.f);
  const [bytesA, bytesB] = [await fs.readFile(a), await fs.readFile(b)];
  await fs.writeFile(a, bytesB);
  await fs.writeFile(b, bytesA);
  const checked = strata(['check', '--json'], env);
  t.equal(checked.code, 15, 'a plain check fails');
  const report = JSON.parse(checked.stdout.split('\n')[0]);
  t.same(report.problems.map((p: { object: string }) => p.object).sort(), [`pack ${path.basename(a)}`, `pack ${path.basename(b)}`].sort());
  t.same(report.problems.flatMap((p: { files: string[] }) => p.files.map((f) => path.basename(f))).sort(), ['a.bin', 'a.bin', 'b.bin'],
    'a.bin in both snapshots, b.bin in the second');
  await fs.writeFile(a, bytesA);
  await fs.writeFile(b, bytesB);

  const [newest] = JSON.parse(strata(['snapshots', '--json'], env).stdout).slice(-1);
  await fs.rm(path.join(repo, 'snapshots', newest.id));
  const lost = strata(['check'], env);
  t.equal(lost.code, 0, 'no damage: every snapshot left is whole');
  t.match(lost.stdout, /\d+ trees? reached by no snapshot, 1 of them on top \(holding .*\): .*snapshot records that were lost/);
  const bad = strata(['check', '--read-data-subset', '6/5'], env);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /--read-data-subset takes "n\/m"/);
  t.equal(strata(['check', '--read-data-subset', '1/1'], env).code, 0, 'part 1 of 1 reads everything, and it is whole');
});

t.test('repair snapshots leaves out the files whose data is lost, names them, and keeps the originals unless --forget', async (t) => {
  const { env, dir, source, repo } = setup(t);
  await fs.mkdir(path.join(source, 'docs'), { recursive: true });
  await fs.writeFile(path.join(source, 'kept.txt'), 'kept');
  t.equal(strata(['init'], env).code, 0);
  const ids = [JSON.parse(strata(['backup', source, '--json'], env).stdout).id];
  await fs.writeFile(path.join(source, 'docs', 'lost.bin'), randomStream(21, 400_000));
  ids.push(JSON.parse(strata(['backup', source, '--json'], env).stdout).id); // its only new data pack holds lost.bin alone
  await fs.writeFile(path.join(source, 'later.txt'), 'later');
  const newest = JSON.parse(strata(['backup', source, '--json'], env).stdout);
  ids.push(newest.id);
  await fs.rm(await largestPack(repo));
  t.equal(strata(['check'], env).code, 15);

  const dry = strata(['repair', 'snapshots', '--dry-run', '--json'], env);
  t.equal(dry.code, 0, dry.stderr);
  const planned = JSON.parse(dry.stdout);
  t.same(planned.snapshots.map((s: { state: string }) => s.state), ['intact', 'repaired', 'repaired']);
  t.match(planned.snapshots[1].leftOut, [{ path: new RegExp(`${source}/docs/lost\\.bin$`), message: /missing/ }]);
  t.equal(JSON.parse(strata(['snapshots', '--json'], env).stdout).length, 3, 'a dry run writes nothing');

  const fixed = strata(['repair', 'snapshots', newest.id.slice(0, 8)], env);
  t.equal(fixed.code, 0, fixed.stderr);
  t.match(fixed.stdout, new RegExp(`snapshot ${newest.id.slice(0, 8)}: 1 file or folder left out; repaired as [0-9a-f]{8}\n  ${source}/docs/lost\\.bin: `));
  const snaps = JSON.parse(strata(['snapshots', '--json'], env).stdout);
  t.equal(snaps.length, 4, 'the originals stay');
  const repaired = snaps.find((s: { repairedFrom?: string }) => s.repairedFrom === newest.id);
  t.ok(repaired, 'the new snapshot names its original');
  t.same(repaired.tags, ['repaired']);
  t.equal(repaired.time, newest.time, 'and keeps its time');
  t.equal(repaired.summary.files, newest.summary.files - 1);
  t.match(repaired.summary.errors, [{ path: /lost\.bin$/, message: /^left out by repair: / }]);
  const out = path.join(dir, 'out');
  t.equal(strata(['restore', `${repaired.id}:${source}`, '--target', out], env).code, 0, 'the repaired snapshot restores whole');
  t.same((await fs.readdir(out)).sort(), ['docs', 'kept.txt', 'later.txt']);
  t.same(await fs.readdir(path.join(out, 'docs')), []);

  t.equal(strata(['repair', 'snapshots', '--forget'], env).code, 0);
  const left = JSON.parse(strata(['snapshots', '--json'], env).stdout);
  t.same(left.map((s: { id: string; repairedFrom?: string }) => s.repairedFrom ?? s.id).sort(), [...ids].sort(),
    'each damaged original gave way to one repaired snapshot (the newest not repaired twice); the intact one stays');
  t.equal(strata(['check', '--read-data'], env).code, 0, 'and the repository checks clean');
});

t.test('a deleted index is rebuilt; repair index rebuilds it on demand', async (t) => {
  const { env, dir, source } = setup(t);
  await fs.mkdir(source);
  await fs.writeFile(path.join(source, 'f.txt'), 'content');
  t.equal(strata(['init'], env).code, 0);
  t.equal(strata(['backup', source], env).code, 0);
  await fs.rm(env.STRATA_CACHE_DIR, { recursive: true });
  t.equal(strata(['dump', 'latest', path.join(source, 'f.txt')], env).stdout, 'content');
  const repaired = strata(['repair', 'index', '--json'], env);
  t.equal(repaired.code, 0);
  t.equal(JSON.parse(repaired.stdout).packs, (await packFiles(env.STRATA_REPOSITORY)).length);
  const target = path.join(dir, 'out');
  t.equal(strata(['restore', 'latest', '--target', target], env).code, 0);
});

t.test('a full repository disk: clear error, nothing earlier lost', { skip: mountSkip() }, async (t) => {
  const { env, dir, source, repo } = setup(t);
  await fs.mkdir(repo);
  t.equal(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=6m', 'tmpfs', repo]).status, 0, 'a 6 MiB repository disk');
  t.teardown(() => { spawnSync('umount', ['-l', repo]); });
  await fs.mkdir(source);
  await fs.writeFile(path.join(source, 'small.txt'), 'fits');
  t.equal(strata(['init'], env).code, 0);
  t.equal(strata(['backup', source], env).code, 0);
  // Many files: reads still on their way when the disk fills must not each report a failure.
  await fs.mkdir(path.join(source, 'many'));
  for (let i = 0; i < 200; i++) await fs.writeFile(path.join(source, 'many', `f${i}.bin`), randomStream(100 + i, 100 * 1024));
  const full = strata(['backup', source], env);
  t.equal(full.code, 18, full.stderr);
  t.match(full.stderr, /no space left on the repository disk/);
  t.equal(full.stderr.match(/no space left/g)?.length, 1, 'said once');
  t.equal(full.stderr.match(/^warning:/gm), null, `and nothing else: ${full.stderr.slice(0, 500)}`);
  t.equal(strata(['check'], env).code, 0, 'the repository checks out');
  t.equal(JSON.parse(strata(['snapshots', '--json'], env).stdout).length, 1);
  t.equal(strata(['dump', 'latest', path.join(source, 'small.txt')], env).stdout, 'fits');
  t.same(await fs.readdir(path.join(repo, 'tmp')), [], 'no temporary files are left');
  void dir;
});

t.test('a full cache disk (the local index): clear error, and a backup with room completes', { skip: mountSkip() }, async (t) => {
  const { env, dir, source } = setup(t);
  const cache = path.join(dir, 'small-cache');
  await fs.mkdir(cache);
  t.equal(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=200k', 'tmpfs', cache]).status, 0, 'a 200 KiB cache disk');
  t.teardown(() => { spawnSync('umount', ['-l', cache]); });
  await fs.mkdir(source);
  for (let i = 0; i < 2000; i++) await fs.writeFile(path.join(source, `f${i}.txt`), randomStream(i, 2000));
  t.equal(strata(['init'], env).code, 0);
  const full = strata(['backup', source], { ...env, STRATA_CACHE_DIR: cache });
  t.equal(full.code, 18, full.stderr);
  t.match(full.stderr, /^strata: no space left on the cache disk of the local index at .*STRATA_CACHE_DIR.*nothing stored was lost\n$/);
  t.equal(strata(['backup', source], env).code, 0, 'with room, the backup completes');
  t.equal(strata(['check', '--read-data'], env).code, 0);
});

for (const signal of ['SIGINT', 'SIGTERM', 'SIGKILL'] as const) {
  t.test(`${signal} mid-backup: earlier snapshots intact, check passes, the next backup re-uploads nothing durable`, async (t) => {
    const { env, dir, source, repo } = setup(t);
    await fs.mkdir(source);
    await fs.writeFile(path.join(source, 'first.txt'), 'first snapshot');
    t.equal(strata(['init'], env).code, 0);
    t.equal(strata(['backup', source], env).code, 0);
    const size = 40 * 1024 * 1024;
    for (let i = 0; i < 8; i++) await fs.writeFile(path.join(source, `big-${i}.bin`), randomStream(10 + i, size));

    const run = strataAsync(['backup', source], env);
    t.ok(await until(async () => (await packBytes(repo)) > 40 * 1024 * 1024, 20_000, 20), 'the backup is under way');
    run.child.kill(signal);
    const result = await run.done;
    if (signal === 'SIGKILL') {
      t.equal(result.signal, 'SIGKILL');
      t.equal((await fs.readdir(path.join(repo, 'locks'))).length, 1, 'the killed backup left its lock');
    } else {
      t.equal(result.code, 130, result.stderr);
      t.match(result.stderr, /interrupted/);
    }
    const durable = await packBytes(repo);
    t.ok(durable < 8 * size, 'the backup was stopped before it finished');
    t.equal(strata(['check'], env).code, 0, 'check passes');
    t.same(await fs.readdir(path.join(repo, 'locks')), [], 'the next locker cleared the dead process\'s lock');
    const snaps = JSON.parse(strata(['snapshots', '--json'], env).stdout);
    t.equal(snaps.length, 1, 'no half snapshot');
    t.equal(strata(['dump', 'latest', path.join(source, 'first.txt')], env).stdout, 'first snapshot');

    const resumed = strata(['backup', source, '--json'], env);
    t.equal(resumed.code, 0, resumed.stderr);
    const total = await packBytes(repo);
    t.ok(total < 8 * size * 1.01 + 1024 * 1024, `repository holds ${total} bytes for ${8 * size} bytes of random data: nothing stored twice`);
    t.ok(JSON.parse(resumed.stdout).summary.bytesAdded <= total - durable + 1024 * 1024, 'the resumed backup added only what was missing');
    t.equal(strata(['check', '--read-data'], env).code, 0);
    t.same(await fs.readdir(path.join(repo, 'tmp')), [], 'no partial file of the stopped backup is left');
    void dir;
  });
}
