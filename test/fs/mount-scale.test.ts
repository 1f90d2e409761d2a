/**
 * The mount at scale: a snapshot of 200,000 entries shows distinct inode numbers (hard
 * links excepted), a first listing loads each folder once and a second reaches JS zero
 * times, and the daemon's memory stays bounded however often it is listed (the kernel
 * forgetting everything in between, ten times).
 */
import { spawnSync } from 'node:child_process';
import { promises as fs, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { strata } from '../kit/cli.js';
import { mountRepository } from '../kit/mount.js';
import { mountSkip } from '../kit/real.js';
import { tempDir } from '../kit/tmp.js';

const FOLDERS = 2000;
const PER_FOLDER = 100;

const rssKiB = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
const lsR = (dir: string): number => {
  const r = spawnSync('sh', ['-c', `ls -lR '${dir}' | wc -l`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return Number(r.stdout.trim());
};

t.test('200,000 entries: distinct inode numbers, one load per folder, memory bounded over ten listings', { skip: mountSkip() }, async (t) => {
  const dir = tempDir(t);
  const env = { STRATA_REPOSITORY: path.join(dir, 'repo'), STRATA_PASSWORD: 'pw', STRATA_CACHE_DIR: path.join(dir, 'cache') };
  const source = path.join(dir, 'share');
  for (let f = 0; f < FOLDERS; f++) {
    const folder = path.join(source, `group-${f % 40}`, `folder-${f}`);
    await fs.mkdir(folder, { recursive: true });
    for (let i = 0; i < PER_FOLDER - 1; i++) writeFileSync(path.join(folder, `file-${i}.txt`), i % 10 ? '' : `${f}:${i}`);
    await fs.link(path.join(folder, 'file-0.txt'), path.join(folder, 'hard-link'));
  }
  t.equal(strata(['init'], env).code, 0);
  t.equal(strata(['backup', source], env).code, 0);
  const mount = await mountRepository(t, env);
  const pid = mount.run.child.pid!;
  const latest = path.join(mount.mountpoint, 'snapshots', 'latest', source);

  const folders = FOLDERS + 40 + 1;
  const before = await mount.stats();
  const lines = lsR(latest);
  const first = await mount.stats();
  t.ok(lines > FOLDERS * PER_FOLDER, `ls -lR lists every entry (${lines} lines)`);
  t.ok(first.jsLoad - before.jsLoad <= folders + source.split('/').length + 2, `each folder loaded once (${first.jsLoad - before.jsLoad} loads)`);
  lsR(latest);
  const second = await mount.stats();
  t.equal(second.jsLoad + second.jsRead, first.jsLoad + first.jsRead, 'a second listing reaches JS zero times');

  const inodes = spawnSync('sh', ['-c', `find '${latest}' -mindepth 1 ! -name hard-link -printf '%i\\n' | sort | uniq -d | wc -l`], { encoding: 'utf8' });
  t.equal(inodes.stdout.trim(), '0', 'no two entries share an inode number (hard links aside)');
  const link = spawnSync('stat', ['-c', '%i', path.join(latest, 'group-0/folder-0/hard-link'), path.join(latest, 'group-0/folder-0/file-0.txt')], { encoding: 'utf8' });
  const [a, b] = link.stdout.trim().split('\n');
  t.equal(a, b, 'the hard link shares its inode number');

  // Ten listings with the kernel made to forget everything in between: memory must not grow with them.
  const rss: number[] = [];
  for (let round = 0; round < 10; round++) {
    writeFileSync('/proc/sys/vm/drop_caches', '2');
    lsR(latest);
    rss.push(rssKiB(pid));
  }
  const stats = await mount.stats();
  t.ok(stats.forget > 0, 'the kernel forgot what it held, and said so');
  t.ok(rss[9] <= rss[1] * 1.1, `RSS after the tenth listing ${Math.round(rss[9] / 1024)} MiB, after the second ${Math.round(rss[1] / 1024)} MiB`);
  t.ok(stats.nodes < FOLDERS * PER_FOLDER * 1.5, `the table holds what the kernel does, not every listing's (${stats.nodes} nodes)`);
});
