/**
 * A disk that fills while prune copies blobs out of partly used packs (a full
 * disk during a backup is in test/cli/bad-input.test.ts): a clear error, the
 * repository intact, every snapshot whole, and with room again the prune
 * finishes.
 */
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { strata } from '../kit/cli.js';
import { randomStream } from '../kit/random.js';
import { mountSkip } from '../kit/real.js';
import { tempDir } from '../kit/tmp.js';

t.test('ENOSPC while prune repacks: exit 18, nothing lost, and with room it completes', { skip: mountSkip() }, async (t) => {
  const dir = tempDir(t);
  const disk = path.join(dir, 'disk');
  await fs.mkdir(disk);
  t.equal(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', disk]).status, 0, 'a 24 MiB disk');
  t.teardown(() => { spawnSync('umount', ['-l', disk]); });
  const repo = path.join(disk, 'repo');
  const env = { STRATA_REPOSITORY: repo, STRATA_PASSWORD: 'pw', STRATA_CACHE_DIR: path.join(dir, 'cache') };
  const source = path.join(dir, 'share');
  await fs.mkdir(source);
  for (let i = 0; i < 10; i++) await fs.writeFile(path.join(source, `a${i}.bin`), randomStream(i, 1024 * 1024));
  t.equal(strata(['init'], env).code, 0);
  const first = JSON.parse(strata(['backup', source, '--json'], env).stdout);
  for (let i = 0; i < 5; i++) await fs.rm(path.join(source, `a${i}.bin`));
  await fs.writeFile(path.join(source, 'b.bin'), randomStream(99, 2 * 1024 * 1024));
  t.equal(strata(['backup', source], env).code, 0);
  t.equal(strata(['forget', first.id], env).code, 0, 'the first snapshot forgotten: its packs are now partly used');

  // Leave less room than the copies need.
  const free = () => Number(spawnSync('df', ['--output=avail', '-B1', disk], { encoding: 'utf8' }).stdout.trim().split('\n')[1]);
  await fs.writeFile(path.join(disk, 'filler'), Buffer.alloc(Math.max(0, free() - 2 * 1024 * 1024)));
  const full = strata(['prune', '--grace', '0s', '--max-unused', '0%'], env);
  t.equal(full.code, 18, full.stderr);
  t.match(full.stderr, /no space left on the repository disk/);
  t.equal(strata(['check', '--read-data'], env).code, 0, 'the repository checks out, every byte read');
  const out = path.join(dir, 'out');
  t.equal(strata(['restore', 'latest', '--target', out], env).code, 0, 'the snapshot left restores');
  t.same(await fs.readdir(path.join(repo, 'tmp')), [], 'no partial file is left');

  await fs.rm(path.join(disk, 'filler'));
  const pruned = strata(['prune', '--grace', '0s', '--max-unused', '0%', '--json'], env);
  t.equal(pruned.code, 0, pruned.stderr);
  t.ok(JSON.parse(pruned.stdout).freedBytes >= 5 * 1024 * 1024, 'with room, the prune frees the forgotten files');
  t.equal(strata(['check', '--read-data'], env).code, 0);
});
