/**
 * Locks as processes meet them: two backups write at once, a repair refuses
 * while another process holds a lock, a killed process's lock is stale at once
 * on its host, one of another pid namespace is not, and `unlock` removes what is
 * stale (or everything).
 */
import { spawn, spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { STRATA, strata, strataAsync, testEnv } from '../kit/cli.js';
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

t.test('a live lock from another pid namespace (a container with the same hostname) is not taken for a dead process\'s', async (t) => {
  const { dir, repo, env } = setup(t);
  const a = await share(path.join(dir, 'a'), 4, 2, 1024 * 1024);
  t.equal(strata(['init'], env).code, 0);
  const done = JSON.parse(strata(['backup', a, '--json'], env).stdout);
  t.equal(strata(['forget', done.id], env).code, 0);
  // A prune that waits out its grace in a pid namespace of its own, under a pid no process out here has.
  const script = 'echo 32000 > /proc/sys/kernel/ns_last_pid && "$@"';
  const inside = spawn('unshare', ['--pid', '--fork', '--mount-proc', '--kill-child', 'sh', '-c', script, 'sh', process.execPath, STRATA, 'prune', '--grace', '1h'],
    { env: testEnv(env), stdio: 'ignore' });
  const ended = new Promise((resolve) => inside.on('close', resolve));
  t.teardown(() => { inside.kill('SIGKILL'); });
  t.ok(await until(async () => (await fs.readdir(path.join(repo, 'deletions')).catch(() => [])).length > 0, 20_000, 10), 'the prune in the namespace holds its lock');
  t.same(JSON.parse(strata(['unlock', '--json'], env).stdout), { removed: 0 }, 'its lock is live, though its pid is nobody\'s here');
  const backup = strata(['backup', a, '--json'], env);
  t.equal(backup.code, 0, 'a backup beside it runs');
  inside.kill('SIGKILL');
  await ended;
  t.same(JSON.parse(strata(['unlock', '--json'], env).stdout), { removed: 0 }, 'once it is killed, its lock waits for the 30-minute rule: its process cannot be asked from here');
  t.same(JSON.parse(strata(['unlock', '--remove-all', '--json'], env).stdout), { removed: 1 }, 'and --remove-all removes it');
});

t.test('a repository on read-only media: restore and check run without a lock and say so; a backup fails clearly', async (t) => {
  const { dir, repo, env } = setup(t);
  const a = await share(path.join(dir, 'a'), 5, 3, 256 * 1024);
  t.equal(strata(['init'], env).code, 0);
  t.equal(strata(['backup', a], env).code, 0);
  const readOnly = path.join(dir, 'ro');
  await fs.mkdir(readOnly);
  t.equal(spawnSync('mount', ['--bind', repo, readOnly]).status, 0, 'bind mount');
  t.teardown(() => { spawnSync('umount', ['-l', readOnly]); });
  t.equal(spawnSync('mount', ['-o', 'remount,bind,ro', readOnly]).status, 0, 'made read-only');
  const roEnv = { ...env, STRATA_REPOSITORY: readOnly };
  const restored = strata(['restore', 'latest', '--target', path.join(dir, 'out')], roEnv);
  t.equal(restored.code, 0, restored.stderr);
  t.match(restored.stderr, /cannot be written \(EROFS\), so restore takes no lock/, 'restore warns that it takes no lock');
  t.same((await fs.readdir(path.join(dir, 'out', a))).sort(), (await fs.readdir(a)).sort(), 'and restores');
  const checked = strata(['check', '--read-data'], roEnv);
  t.equal(checked.code, 0, checked.stderr);
  t.match(checked.stderr, /so check takes no lock/);
  const backup = strata(['backup', a], roEnv);
  t.equal(backup.code, 17, 'a backup cannot write: storage error');
  t.match(backup.stderr, /read-only file system/i);
});
