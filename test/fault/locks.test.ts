/**
 * Locks as processes meet them: two backups write at once, a repair refuses
 * while another process holds a lock, a killed process's lock is stale at once
 * on its host, and `unlock` removes what is stale (or everything).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { strata, strataAsync } from '../kit/cli.js';
import { packBytes } from '../kit/packs.js';
import { randomStream } from '../kit/random.js';
import { tempDir } from '../kit/tmp.js';
import { until } from '../kit/wait.js';

function setup(t: Parameters<typeof tempDir>[0]) {
  const dir = tempDir(t);
  const repo = path.join(dir, 'repo');
  return { dir, repo, env: { STRATA_REPOSITORY: repo, STRATA_PASSWORD: 'pw', STRATA_CACHE_DIR: path.join(dir, 'cache') } };
}

async function share(root: string, seed: number, files: number, size: number): Promise<string> {
  await fs.mkdir(root, { recursive: true });
  for (let i = 0; i < files; i++) await fs.writeFile(path.join(root, `f${i}.bin`), randomStream(seed * 100 + i, size));
  return root;
}

/** A prune that has scheduled deletions and waits out an hour's grace: a live lock that stays until it is stopped. */
async function waitingPrune(t: Test, repo: string, env: Record<string, string>, forgetId: string) {
  t.equal(strata(['forget', forgetId], env).code, 0);
  const prune = strataAsync(['prune', '--grace', '1h'], env);
  t.ok(await until(async () => (await fs.readdir(path.join(repo, 'deletions')).catch(() => [])).length > 0, 20_000, 10), 'prune scheduled and waits');
  return prune;
}

t.test('two backups at once both land and restore; repair index refuses while another holds a lock', async (t) => {
  const { dir, repo, env } = setup(t);
  const a = await share(path.join(dir, 'a'), 1, 8, 2 * 1024 * 1024);
  const b = await share(path.join(dir, 'b'), 2, 8, 2 * 1024 * 1024);
  t.equal(strata(['init'], env).code, 0);
  const [ra, rb] = await Promise.all([strataAsync(['backup', a, '--json'], env).done, strataAsync(['backup', b, '--json'], env).done]);
  t.equal(ra.code, 0, ra.stderr);
  t.equal(rb.code, 0, rb.stderr);
  t.equal(strata(['check', '--read-data'], env).code, 0);
  for (const [result, source, out] of [[ra, a, 'out-a'], [rb, b, 'out-b']] as const) {
    t.equal(strata(['restore', `${JSON.parse(result.stdout).id}:${source}`, '--target', path.join(dir, out)], env).code, 0);
    t.same((await fs.readdir(path.join(dir, out))).sort(), (await fs.readdir(source)).sort());
  }

  const prune = await waitingPrune(t, repo, env, JSON.parse(ra.stdout).id);
  const repair = strata(['repair', 'index'], env);
  t.equal(repair.code, 16, repair.stderr);
  t.match(repair.stderr, /locked by "prune"/, 'repair says who is in its way');
  prune.child.kill('SIGTERM');
  t.equal((await prune.done).code, 130);
  t.equal(strata(['repair', 'index'], env).code, 0, 'once it is gone, repair runs');
  t.equal(strata(['prune', '--grace', '0s'], env).code, 0, 'and a later prune carries out the schedule');
});

t.test('a killed backup\'s lock: stale at once on its host, removed by unlock; --remove-all removes live ones too', async (t) => {
  const { dir, repo, env } = setup(t);
  const a = await share(path.join(dir, 'a'), 3, 8, 8 * 1024 * 1024);
  t.equal(strata(['init'], env).code, 0);
  const killed = strataAsync(['backup', a], env);
  t.ok(await until(async () => (await packBytes(repo)) > 8 * 1024 * 1024, 20_000, 10), 'the backup is under way');
  killed.child.kill('SIGKILL');
  await killed.done;
  t.equal((await fs.readdir(path.join(repo, 'locks'))).length, 1, 'its lock is left');
  t.same(JSON.parse(strata(['unlock', '--json'], env).stdout), { removed: 1 }, 'unlock removes the stale lock');

  const done = JSON.parse(strata(['backup', a, '--json'], env).stdout);
  const prune = await waitingPrune(t, repo, env, done.id);
  t.same(JSON.parse(strata(['unlock', '--json'], env).stdout), { removed: 0 }, 'a live lock is not stale');
  t.same(JSON.parse(strata(['unlock', '--remove-all', '--json'], env).stdout), { removed: 1 }, '--remove-all removes it');
  prune.child.kill('SIGTERM');
  await prune.done;
});
