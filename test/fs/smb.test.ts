/** Strata versions over real SMB: a mount shared by smbd, and Previous Versions on a live share. */
import { createHash } from 'node:crypto';
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { smbConfig } from '../../src/fs/smb.js';
import { LocalBackend } from '../../src/store/backend/local.js';
import { Repository } from '../../src/store/repository.js';
import { strata } from '../kit/cli.js';
import { mountRepository } from '../kit/mount.js';
import { Random } from '../kit/random.js';
import { hasSamba, startSamba } from '../kit/samba.js';
import { tempDir } from '../kit/tmp.js';
import { mountSkip, skipUnlessReal } from '../kit/real.js';

const skip = mountSkip() || skipUnlessReal(hasSamba() ? false : 'smbd/smbclient are not installed (scripts/setup.sh installs them)');

/** The share blocks of `strata smb-config` as lines, for our test smb.conf. */
function shareLines(text: string, name: string): string[] {
  const lines = text.split('\n');
  const start = lines.indexOf(`[${name}]`);
  const end = lines.findIndex((l, i) => i > start && l.startsWith('['));
  return lines.slice(start + 1, end < 0 ? undefined : end).filter((l) => l.trim() && !l.trim().startsWith('#'));
}

/** A repository and a share that Samba's user may reach (the folders on the way are 0755). */
async function setup(t: Parameters<typeof tempDir>[0]) {
  const dir = tempDir(t);
  await fs.chmod(dir, 0o755);
  const env = { STRATA_REPOSITORY: path.join(dir, 'repo'), STRATA_PASSWORD: 'pw', STRATA_CACHE_DIR: path.join(dir, 'cache') };
  const share = path.join(dir, 'share');
  await fs.mkdir(share);
  await fs.chmod(share, 0o755);
  return { dir, env, share };
}

t.test('versions over SMB: list, copy out, writes refused, permissions kept, Previous Versions', { skip }, async (t) => {
  const { env, share } = await setup(t);
  const report = new Random(3).bytes(700_000);
  await fs.writeFile(path.join(share, 'report.bin'), report);
  await fs.chmod(path.join(share, 'report.bin'), 0o644);
  await fs.writeFile(path.join(share, 'secret.txt'), 'root only');
  await fs.chmod(path.join(share, 'secret.txt'), 0o600);
  t.equal(strata(['init'], env).code, 0);
  t.equal(strata(['backup', share], env).code, 0);
  await fs.writeFile(path.join(share, 'report.bin'), 'changed today');

  const { mountpoint } = await mountRepository(t, env, ['--allow-other']);
  const configText = strata(['smb-config', mountpoint, '--share', share, '--name', 'strata'], env).stdout;
  t.same(configText, smbConfig({ mountpoint, share, name: 'strata' }));
  const samba = await startSamba(t, { strata: shareLines(configText, 'strata'), 'strata-live': shareLines(configText, 'strata-live') });

  const listing = samba.client('strata', 'ls snapshots\\*');
  t.equal(listing.status, 0, listing.stderr + listing.stdout);
  t.match(listing.stdout, /\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d/, 'the snapshot folders are listed');

  const out = tempDir(t);
  const inside = `snapshots\\latest${share.replace(/\//g, '\\')}`;
  const got = samba.client('strata', `cd "${inside}"; get report.bin`, out);
  t.equal(got.status, 0, got.stderr + got.stdout);
  const hash = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  t.equal(hash(await fs.readFile(path.join(out, 'report.bin'))), hash(report), 'the old version comes out byte for byte');

  await fs.writeFile(path.join(out, 'upload.txt'), 'x');
  const put = samba.client('strata', `cd "${inside}"; put upload.txt`, out);
  t.match(put.stdout + put.stderr, /NT_STATUS_(ACCESS_DENIED|MEDIA_WRITE_PROTECTED)/, 'writes are refused');

  const secret = samba.client('strata', `cd "${inside}"; get secret.txt`, out);
  t.match(secret.stdout + secret.stderr, /NT_STATUS_ACCESS_DENIED/, 'a user without rights on the NAS file is denied');

  const versions = samba.client('strata-live', 'allinfo report.bin');
  t.equal(versions.status, 0, versions.stderr + versions.stdout + samba.log());
  t.match(versions.stdout, /@GMT-\d{4}\.\d\d\.\d\d-\d\d\.\d\d\.\d\d/, 'Previous Versions lists the Strata snapshot');
});

t.test('two snapshots in the same second are both Previous Versions (their @GMT names still parse)', { skip }, async (t) => {
  const { dir, env, share } = await setup(t);
  await fs.writeFile(path.join(share, 'report.txt'), 'first');
  await fs.chmod(path.join(share, 'report.txt'), 0o644);
  t.equal(strata(['init'], env).code, 0);
  t.equal(strata(['backup', share], env).code, 0);
  await fs.writeFile(path.join(share, 'report.txt'), 'second, in the same second');
  t.equal(strata(['backup', share], env).code, 0);
  // Make the second snapshot fall in the first one's second (a continuous capture does this).
  const repo = await Repository.open(new LocalBackend(env.STRATA_REPOSITORY), { password: 'pw', cacheDir: path.join(dir, 'cache-writer') });
  const [first, second] = await repo.listSnapshots();
  await repo.saveSnapshot({ ...second.snapshot, time: first.snapshot.time });
  await repo.backend.remove(`snapshots/${second.id}`);
  await repo.close();
  await fs.writeFile(path.join(share, 'report.txt'), 'live');

  const { mountpoint } = await mountRepository(t, env, ['--allow-other']);
  const configText = strata(['smb-config', mountpoint, '--share', share, '--name', 'strata'], env).stdout;
  const samba = await startSamba(t, { 'strata-live': shareLines(configText, 'strata-live') });
  const versions = samba.client('strata-live', 'allinfo report.txt');
  t.equal(versions.status, 0, versions.stderr + versions.stdout + samba.log());
  const tokens = [...new Set(versions.stdout.match(/@GMT-\d{4}\.\d\d\.\d\d-\d\d\.\d\d\.\d\d/g) ?? [])];
  t.equal(tokens.length, 2, `both versions are listed (${tokens.join(', ')})`);
  const out = tempDir(t);
  const contents = tokens.map((token) => {
    const got = samba.client('strata-live', `get "${token}\\report.txt" v.txt`, out);
    t.equal(got.status, 0, got.stderr + got.stdout);
    return readFileSync(path.join(out, 'v.txt'), 'utf8');
  });
  t.same(contents.sort(), ['first', 'second, in the same second'], 'and each opens as its own version');
});
