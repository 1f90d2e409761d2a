/** The strata command end to end: what a user types and what they rely on seeing. */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { strata } from '../kit/cli.js';
import { tempDir } from '../kit/tmp.js';
import { writeTree } from '../kit/tree.js';

function setup(t: Parameters<typeof tempDir>[0]) {
  const dir = tempDir(t);
  const env = { STRATA_REPOSITORY: path.join(dir, 'repo'), STRATA_PASSWORD: 'pw', STRATA_CACHE_DIR: path.join(dir, 'cache') };
  return { dir, env, source: path.join(dir, 'share') };
}

t.test('init, two backups, snapshots, ls, dump, diff, restore with --include', async (t) => {
  const { dir, env, source } = setup(t);
  await fs.mkdir(source);
  await writeTree(source, {
    'a.txt': { type: 'file', content: Buffer.from('alpha\n') },
    'sub': { type: 'dir', children: { 'b.pdf': { type: 'file', content: Buffer.from('%PDF b\n') }, 'c.txt': { type: 'file', content: Buffer.from('c\n') } } },
  });
  t.equal(strata(['init'], env).code, 0);
  await fs.writeFile(path.join(dir, 'excludes'), '# comment\n*.tmp\n');
  await fs.writeFile(path.join(source, 'scratch.tmp'), 'not backed up');
  const first = JSON.parse(strata(['backup', source, '--tag', 'daily', '--exclude-file', path.join(dir, 'excludes'), '--json'], env).stdout);
  t.same(first.excludes, ['*.tmp'], 'patterns from --exclude-file are recorded');
  await fs.rm(path.join(source, 'scratch.tmp'));
  await fs.writeFile(path.join(source, 'a.txt'), 'alpha changed\n');
  await fs.writeFile(path.join(source, 'new.txt'), 'new\n');
  const secondRun = strata(['backup', source, '--json'], env);
  t.equal(secondRun.code, 0, secondRun.stderr);
  const second = JSON.parse(secondRun.stdout);
  t.equal(second.parent, first.id, 'the second backup is incremental against the first');
  t.equal(second.summary.filesRead, 2);

  const list = JSON.parse(strata(['snapshots', '--json'], env).stdout);
  t.same(list.map((s: { id: string }) => s.id), [first.id, second.id]);
  t.same(list[0].tags, ['daily']);
  t.match(strata(['snapshots'], env).stdout, /2 snapshots/);

  const ls = strata(['ls', 'latest', source], env).stdout.trim().split('\n');
  t.same(ls, ['a.txt', 'new.txt', 'sub', 'sub/b.pdf', 'sub/c.txt'].map((p) => `${source}/${p}`));
  t.equal(strata(['dump', first.id.slice(0, 6), `${source}/a.txt`], env).stdout, 'alpha\n', 'dump by id prefix');
  t.equal(strata(['dump', 'latest', `${source}/a.txt`], env).stdout, 'alpha changed\n');

  const diff = strata(['diff', first.id, second.id], env).stdout.trim().split('\n');
  t.same(diff, [`M  ${source}/a.txt`, `+  ${source}/new.txt`]);

  const target = path.join(dir, 'out');
  const r = strata(['restore', `latest:${source}`, '--target', target, '--include', '*.pdf'], env);
  t.equal(r.code, 0, r.stderr);
  t.same(await fs.readdir(target), ['sub']);
  t.same(await fs.readdir(path.join(target, 'sub')), ['b.pdf']);

  const stats = JSON.parse(strata(['stats', '--json'], env).stdout);
  t.equal(stats.snapshots, 2);
  t.ok(stats.packs >= 1);
});

t.test('snapshot references: latest, unique prefix, ambiguous, unknown', async (t) => {
  const { env, source } = setup(t);
  await fs.mkdir(source);
  t.equal(strata(['init'], env).code, 0);
  const none = strata(['ls', 'latest'], env);
  t.equal(none.code, 13);
  t.match(none.stderr, /no snapshot yet/);
  const ids: string[] = [];
  for (let i = 0; i < 12; i++) {
    await fs.writeFile(path.join(source, 'f'), String(i));
    ids.push(JSON.parse(strata(['backup', source, '--json'], env).stdout).id);
  }
  // Among 12 ids some share their first hex digit.
  const firsts = ids.map((id) => id[0]);
  const shared = firsts.find((c, i) => firsts.indexOf(c) !== i)!;
  const amb = strata(['ls', shared], env);
  t.equal(amb.code, 14, 'an ambiguous prefix is refused');
  t.match(amb.stderr, /matches \d+ snapshots/);
  t.equal(strata(['ls', 'ffffffffffffffff0'], env).code, 13);
  t.equal(strata(['ls', 'not-hex!'], env).code, 1);
});

t.test('--help lists every command and the exit codes', async (t) => {
  const help = strata(['--help']);
  t.equal(help.code, 0);
  for (const cmd of ['init', 'backup', 'snapshots', 'ls', 'dump', 'restore', 'diff', 'stats', 'check', 'repair', 'unlock']) {
    t.match(help.stdout, new RegExp(`\\n  ${cmd}\\b`), cmd);
  }
  t.match(help.stdout, /Exit codes:[\s\S]*12 +no key of the repository opens/);
});
