/**
 * A repository whose primary store is S3, on a real Ceph RADOS Gateway: the
 * restic-style commands work there as on a disk (init makes the bucket), with the
 * index in the local cache; a mount reads file data through JS; replication goes
 * from S3 to a folder and from a folder to S3.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { startCeph } from '../kit/ceph.js';
import { strata } from '../kit/cli.js';
import { mountRepository } from '../kit/mount.js';
import { randomStream } from '../kit/random.js';
import { mountSkip } from '../kit/real.js';
import { tempDir } from '../kit/tmp.js';

t.test('init, backup, snapshots, ls, restore, check, mount, forget, prune and replicate (both ways) on S3', async (t) => {
  const ceph = await startCeph(t);
  if (!ceph) return;
  const dir = tempDir(t);
  const env = { ...ceph.env, STRATA_REPOSITORY: `s3:${ceph.endpoint}/strata-test/repo`, STRATA_PASSWORD: 'pw', STRATA_CACHE_DIR: path.join(dir, 'cache') };
  const source = path.join(dir, 'share');
  await fs.mkdir(path.join(source, 'docs'), { recursive: true });
  await fs.writeFile(path.join(source, 'docs', 'a.txt'), 'alpha');
  await fs.writeFile(path.join(source, 'big.bin'), randomStream(7, 20 * 1024 * 1024)); // more than one pack, parts of a multipart upload

  const init = strata(['init', '--json'], env);
  t.equal(init.code, 0, init.stderr);
  t.match(JSON.parse(init.stdout), { location: `s3:${ceph.endpoint}/strata-test/repo` });
  t.equal(strata(['init'], env).code, 11, 'a second init is refused');
  const first = strata(['backup', source, '--json'], env);
  t.equal(first.code, 0, first.stderr);
  await fs.writeFile(path.join(source, 'docs', 'b.txt'), 'beta');
  const second = JSON.parse(strata(['backup', source, '--json'], env).stdout);
  t.equal(second.summary.filesRead, 1, 'incremental: only the new file is read');
  const snapshots = JSON.parse(strata(['snapshots', '--json'], env).stdout);
  t.equal(snapshots.length, 2);
  t.match(strata(['ls', 'latest', path.join(source, 'docs')], env).stdout, /b\.txt/);

  const target = path.join(dir, 'out');
  const restored = strata(['restore', `latest:${source}`, '--target', target], env);
  t.equal(restored.code, 0, restored.stderr);
  t.ok((await fs.readFile(path.join(target, 'big.bin'))).equals(await fs.readFile(path.join(source, 'big.bin'))), 'restores byte for byte');
  const checked = strata(['check', '--read-data'], env);
  t.equal(checked.code, 0, checked.stderr);

  // A second machine: a cache of its own, the index rebuilt from the bucket.
  const elsewhere = { ...env, STRATA_CACHE_DIR: path.join(dir, 'cache-2') };
  t.equal(strata(['dump', 'latest', path.join(source, 'docs', 'b.txt')], elsewhere).stdout, 'beta', 'another cache opens it from the bucket alone');

  if (!mountSkip()) {
    const { mountpoint } = await mountRepository(t, env);
    const through = path.join(mountpoint, 'snapshots', 'latest', source);
    t.ok((await fs.readFile(path.join(through, 'big.bin'))).equals(await fs.readFile(path.join(source, 'big.bin'))), 'the mount reads it from S3');
  }

  const forgotten = strata(['forget', snapshots[0].id, '--prune', '--grace', '0s', '--json'], env);
  t.equal(forgotten.code, 0, forgotten.stderr);
  t.equal(JSON.parse(strata(['snapshots', '--json'], env).stdout).length, 1);
  t.equal(strata(['check', '--read-data'], env).code, 0, 'checks clean after the prune');

  // S3 → a local folder, then that folder → another prefix on S3: each copy opens and restores on its own.
  const local = path.join(dir, 'copy');
  const toLocal = strata(['replicate', '--to', local, '--json'], env);
  t.equal(toLocal.code, 0, toLocal.stderr);
  t.match(JSON.parse(toLocal.stdout), { created: true, snapshotsCopied: 1 });
  const localEnv = { ...env, STRATA_REPOSITORY: local, STRATA_CACHE_DIR: path.join(dir, 'cache-local') };
  t.equal(strata(['check', '--read-data'], localEnv).code, 0, 'the local copy checks clean');
  const back = `s3:${ceph.endpoint}/strata-copy/again`;
  const toS3 = strata(['replicate', '--to', back, '--json'], localEnv);
  t.equal(toS3.code, 0, toS3.stderr);
  const backEnv = { ...env, STRATA_REPOSITORY: back, STRATA_CACHE_DIR: path.join(dir, 'cache-back') };
  t.equal(strata(['dump', 'latest', path.join(source, 'docs', 'b.txt')], backEnv).stdout, 'beta', 'and the copy of the copy on S3 reads');
  t.match(JSON.parse(strata(['replicate', '--to', back, '--json'], localEnv).stdout), { packsCopied: 0, snapshotsCopied: 0, bytesCopied: 0 }, 'nothing new: nothing moves');

  const wrongKeys = strata(['snapshots'], { ...env, AWS_SECRET_ACCESS_KEY: 'wrong' });
  t.equal(wrongKeys.code, 17);
  t.match(wrongKeys.stderr, /refused the credentials/);
  const noBucket = strata(['snapshots'], { ...env, STRATA_REPOSITORY: `s3:${ceph.endpoint}/no-such-bucket` });
  t.equal(noBucket.code, 10);
  t.match(noBucket.stderr, /bucket .* does not exist/);
});
