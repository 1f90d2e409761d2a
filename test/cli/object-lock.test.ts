/**
 * A copy on S3 under Object Lock, on a real Ceph RADOS Gateway: replicate makes the
 * bucket with Object Lock and writes every object locked; neither Strata (a forget
 * and prune of the copy) nor the SDK (a delete of the object version) removes one;
 * a bucket made without Object Lock is refused by name; and replicate extends the
 * locks once half the period has passed.
 */
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import {
  CreateBucketCommand, DeleteObjectCommand, HeadObjectCommand, ListObjectVersionsCommand, S3Client, type ObjectVersion,
} from '@aws-sdk/client-s3';
import t from 'tap';
import { startCeph } from '../kit/ceph.js';
import { strata } from '../kit/cli.js';
import { randomStream } from '../kit/random.js';
import { tempDir } from '../kit/tmp.js';

const DAY_MS = 86_400_000;

t.test('replicate --object-lock: nothing on the copy can be deleted, through Strata or the SDK', async (t) => {
  const ceph = await startCeph(t);
  if (!ceph) return;
  const dir = tempDir(t);
  const env = { ...ceph.env, STRATA_REPOSITORY: path.join(dir, 'repo'), STRATA_PASSWORD: 'pw', STRATA_CACHE_DIR: path.join(dir, 'cache') };
  const source = path.join(dir, 'share');
  await fs.mkdir(source, { recursive: true });
  await fs.writeFile(path.join(source, 'a.txt'), 'alpha');
  await fs.writeFile(path.join(source, 'big.bin'), randomStream(31, 12 * 1024 * 1024)); // a pack large enough for a multipart upload
  t.equal(strata(['init'], env).code, 0);
  const snapshot = JSON.parse(strata(['backup', source, '--json'], env).stdout);
  const s3 = new S3Client({
    region: 'us-east-1', endpoint: ceph.endpoint, forcePathStyle: true,
    credentials: { accessKeyId: ceph.env.AWS_ACCESS_KEY_ID!, secretAccessKey: ceph.env.AWS_SECRET_ACCESS_KEY! },
  });
  t.teardown(() => s3.destroy());

  await s3.send(new CreateBucketCommand({ Bucket: 'plain' }));
  const plain = strata(['replicate', '--to', `s3:${ceph.endpoint}/plain/copy`, '--object-lock', 'compliance:1'], env);
  t.equal(plain.code, 1);
  t.match(plain.stderr, /the bucket plain of .* was not created with Object Lock, which cannot be turned on later/);
  t.equal(strata(['replicate', '--to', `s3:${ceph.endpoint}/plain/copy`, '--object-lock', 'forever'], env).code, 1, 'a lock spec that is not mode:days is refused');

  const to = `s3:${ceph.endpoint}/locked/copy`;
  const run = strata(['replicate', '--to', to, '--object-lock', 'compliance:1', '--json'], env);
  t.equal(run.code, 0, run.stderr);
  t.match(JSON.parse(run.stdout), { created: true, snapshotsCopied: 1 });
  const versions = async (): Promise<ObjectVersion[]> => (await s3.send(new ListObjectVersionsCommand({ Bucket: 'locked' }))).Versions ?? [];
  const written = await versions();
  t.ok(written.some((v) => v.Key!.startsWith('copy/packs/')) && written.some((v) => v.Key === `copy/snapshots/${snapshot.id}`));
  t.notOk(written.some((v) => v.Key!.startsWith('copy/locks/')), 'lock files are released (they are not locked)');
  const retainedUntil = new Map<string, number>();
  for (const v of written) {
    const head = await s3.send(new HeadObjectCommand({ Bucket: 'locked', Key: v.Key, VersionId: v.VersionId }));
    t.equal(head.ObjectLockMode, 'COMPLIANCE', `${v.Key} is locked`);
    const until = head.ObjectLockRetainUntilDate!.getTime();
    t.ok(Math.abs(until - (Date.now() + DAY_MS)) < 10 * 60_000, `${v.Key} for the day asked for`);
    retainedUntil.set(v.Key!, until);
  }

  // The SDK, with the keys a compromised primary would hold: the data version cannot be deleted.
  const record = written.find((v) => v.Key === `copy/snapshots/${snapshot.id}`)!;
  await t.rejects(s3.send(new DeleteObjectCommand({ Bucket: 'locked', Key: record.Key, VersionId: record.VersionId })), { name: 'AccessDenied' });
  const pack = written.find((v) => v.Key!.startsWith('copy/packs/'))!;
  await t.rejects(s3.send(new DeleteObjectCommand({ Bucket: 'locked', Key: pack.Key, VersionId: pack.VersionId, BypassGovernanceRetention: true })),
    { name: 'AccessDenied' }, 'not even bypassing governance: the mode is compliance');

  // Strata, on the copy opened as a repository: a forget and prune are refused, and name the lock.
  const copyEnv = { ...env, STRATA_REPOSITORY: to, STRATA_CACHE_DIR: path.join(dir, 'cache-copy') };
  const forgotten = strata(['forget', snapshot.id, '--prune', '--grace', '0s'], copyEnv);
  t.equal(forgotten.code, 17, forgotten.stderr);
  t.match(forgotten.stderr, new RegExp(`snapshots/${snapshot.id} in .* is under Object Lock \\(COMPLIANCE\\) until \\d{4}-`));
  const after = await versions();
  t.same(after.map((v) => [v.Key, v.VersionId, v.Size]).sort(), written.map((v) => [v.Key, v.VersionId, v.Size]).sort(), 'every object version is still there');
  t.equal(strata(['dump', 'latest', path.join(source, 'a.txt')], copyEnv).stdout, 'alpha', 'and the copy still restores');

  // Half the period later (as the state says), the next run extends every lock.
  await fs.writeFile(path.join(source, 'b.txt'), 'beta');
  t.equal(strata(['backup', source], env).code, 0);
  const stateDir = path.join(env.STRATA_CACHE_DIR, 'replicas');
  const statePath = path.join(stateDir, (await fs.readdir(stateDir)).find((n) => readFileSync(path.join(stateDir, n), 'utf8').includes('/locked/copy'))!);
  const state = JSON.parse(readFileSync(statePath, 'utf8'));
  t.ok(state.locksRenewedAt > 0, 'the first run counts as a renewal');
  await fs.writeFile(statePath, JSON.stringify({ ...state, locksRenewedAt: Date.now() - DAY_MS / 2 - 60_000 }));
  const renewing = strata(['replicate', '--to', to, '--object-lock', 'compliance:1', '--json'], env);
  t.equal(renewing.code, 0, renewing.stderr);
  const renewed = JSON.parse(renewing.stdout);
  t.match(renewed, { snapshotsCopied: 1 });
  t.equal(renewed.locksRenewed, (await versions()).length, 'every object, the new ones too');
  const head = await s3.send(new HeadObjectCommand({ Bucket: 'locked', Key: pack.Key, VersionId: pack.VersionId }));
  t.ok(head.ObjectLockRetainUntilDate!.getTime() > retainedUntil.get(pack.Key!)!, 'the lock now ends later');
  t.match(JSON.parse(strata(['replicate', '--to', to, '--object-lock', 'compliance:1', '--json'], env).stdout), { locksRenewed: 0 }, 'and not again soon after');
});
