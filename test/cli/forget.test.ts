/** `strata forget` and `strata prune` as an admin runs them: see what a policy keeps, then get the space back. */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { strata, type CliResult } from '../kit/cli.js';
import { packBytes } from '../kit/packs.js';
import { randomStream } from '../kit/random.js';
import { tempDir } from '../kit/tmp.js';

/** A set-up step that must work for the test to mean anything. */
function ok(r: CliResult): CliResult {
  if (r.code !== 0) throw new Error(`set-up failed: ${r.stderr}`);
  return r;
}

async function setup(t: Parameters<typeof tempDir>[0]) {
  const dir = tempDir(t);
  const env = { STRATA_REPOSITORY: path.join(dir, 'repo'), STRATA_PASSWORD: 'pw', STRATA_CACHE_DIR: path.join(dir, 'cache') };
  const source = path.join(dir, 'share');
  await fs.mkdir(source);
  ok(strata(['init'], env));
  const ids: string[] = [];
  // Three versions of a share whose every file changes each time.
  for (let v = 0; v < 3; v++) {
    for (let i = 0; i < 4; i++) await fs.writeFile(path.join(source, `f${i}.bin`), randomStream(v * 10 + i, 200 * 1024));
    ids.push(JSON.parse(ok(strata(['backup', source, '--json', ...(v === 0 ? ['--tag', 'keep'] : [])], env)).stdout).id);
  }
  return { dir, env, source, ids, repo: env.STRATA_REPOSITORY };
}

t.test('forget --dry-run says what a policy keeps and why; forget --prune removes the rest and frees their space', async (t) => {
  const { env, ids, repo, dir, source } = await setup(t);
  const dry = strata(['forget', '--keep-last', '1', '--keep-tag', 'keep', '--dry-run', '--json'], env);
  t.equal(dry.code, 0, dry.stderr);
  const plan = JSON.parse(dry.stdout);
  t.same(plan.groups[0].keep.map((k: { id: string; reasons: string[] }) => [k.id, k.reasons]), [[ids[2], ['last']], [ids[0], ['tag keep']]]);
  t.same(plan.groups[0].remove.map((r: { id: string }) => r.id), [ids[1]]);
  t.equal(JSON.parse(strata(['snapshots', '--json'], env).stdout).length, 3, 'a dry run removes nothing');
  t.match(strata(['forget', '--keep-last', '1', '--dry-run'], env).stdout, /keep 1 snapshot:\n {2}[0-9a-f]{8} {2}.* {2}last\nwould remove 2 snapshots:/);

  const before = await packBytes(repo);
  const r = strata(['forget', '--keep-last', '1', '--prune', '--grace', '0s', '--json'], env);
  t.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout);
  t.same(result.groups[0].remove.map((x: { id: string }) => x.id).sort(), [ids[0], ids[1]].sort());
  t.ok(result.prune.freedBytes > 0 && result.prune.deletedPacks > 0, 'the prune freed space');
  const after = await packBytes(repo);
  t.ok(after < before / 2, `two of three versions' data went (${before} → ${after} bytes)`);
  t.same(JSON.parse(strata(['snapshots', '--json'], env).stdout).map((s: { id: string }) => s.id), [ids[2]]);
  t.equal(strata(['check', '--read-data'], env).code, 0);
  const target = path.join(dir, 'out');
  t.equal(strata(['restore', 'latest', '--target', target], env).code, 0);
  t.same(await fs.readFile(path.join(target, source, 'f3.bin')), randomStream(23, 200 * 1024), 'the kept version restores');
  t.match(strata(['prune', '--grace', '0s'], env).stdout, /nothing to prune/);
});

t.test('forget by id; prune --no-wait schedules, and a later prune deletes', async (t) => {
  const { env, ids, repo } = await setup(t);
  const r = strata(['forget', ids[1].slice(0, 8)], env);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /removed 1 snapshot:/);
  const before = await packBytes(repo);
  const scheduled = strata(['prune', '--no-wait'], env);
  t.equal(scheduled.code, 0, scheduled.stderr);
  t.match(scheduled.stdout, /scheduled \d+ packs? for deletion/);
  t.match(scheduled.stdout, /deleted by a later prune/);
  t.ok(await packBytes(repo) >= before, 'nothing is deleted yet (the copies were written first)');
  const done = JSON.parse(strata(['prune', '--grace', '0s', '--json'], env).stdout);
  t.ok(done.deletedPacks > 0);
  t.ok(await packBytes(repo) < before);
  t.equal(strata(['check'], env).code, 0);
});

t.test('bad policies and options get a clear message and change nothing', async (t) => {
  const { env } = await setup(t);
  const none = strata(['forget'], env);
  t.equal(none.code, 1);
  t.match(none.stderr, /no policy given/);
  t.match(strata(['forget', '--keep-daily', 'seven'], env).stderr, /a whole number or "unlimited"/);
  t.match(strata(['forget', '--keep-within', '7 days'], env).stderr, /not a duration/);
  t.match(strata(['forget', '--keep-last', '1', '--group-by', 'colour'], env).stderr, /--group-by takes host, paths and tags/);
  t.match(strata(['prune', '--max-unused', 'lots'], env).stderr, /--max-unused takes a percentage/);
  t.match(strata(['prune', '--grace', 'soon'], env).stderr, /--grace takes a duration/);
  t.equal(JSON.parse(strata(['snapshots', '--json'], env).stdout).length, 3, 'every snapshot is still there');
});
