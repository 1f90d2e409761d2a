/** `strata serve` as a process: bad configs, kill -9 mid-capture and a restart, SIGTERM, `strata status`. */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { strata, strataAsync } from '../kit/cli.js';
import { isMounted } from '../kit/mount.js';
import { packBytes } from '../kit/packs.js';
import { randomStream } from '../kit/random.js';
import { tempDir } from '../kit/tmp.js';
import { mountSkip } from '../kit/real.js';
import { until } from '../kit/wait.js';

async function setup(t: Parameters<typeof tempDir>[0], extra: Record<string, unknown> = {}) {
  const dir = tempDir(t);
  const source = path.join(dir, 'share');
  await fs.mkdir(source);
  const env = { STRATA_REPOSITORY: path.join(dir, 'repo'), STRATA_PASSWORD: 'pw', STRATA_CACHE_DIR: path.join(dir, 'cache') };
  const configFile = path.join(dir, 'strata.json');
  await fs.writeFile(configFile, JSON.stringify({ repository: env.STRATA_REPOSITORY, cacheDir: env.STRATA_CACHE_DIR, sources: [{ path: source }], settleSeconds: 0.2, minIntervalSeconds: 0.5, ...extra }));
  return { dir, source, env, configFile };
}

const snapshots = (env: Record<string, string>) => JSON.parse(strata(['snapshots', '--json'], env).stdout || '[]') as { id: string }[];

t.test('a config with an unknown key or a wrong type is refused, naming the key', async (t) => {
  const { configFile, env } = await setup(t, { minIntervalSecond: 3 });
  const r = strata(['serve', '--config', configFile], env);
  t.equal(r.code, 1);
  t.match(r.stderr, /unknown key "minIntervalSecond"/);
  await fs.writeFile(configFile, JSON.stringify({ repository: 1, sources: [{ path: '/x' }] }));
  t.match(strata(['serve', '--config', configFile], env).stderr, /repository: .*expected string/);
});

t.test('with a mount in the config, an edit shows up as a new version in the mount', { skip: mountSkip() }, async (t) => {
  const { dir, source, env } = await setup(t);
  const mnt = path.join(dir, 'mnt');
  const configFile = path.join(dir, 'with-mount.json');
  await fs.writeFile(configFile, JSON.stringify({ repository: env.STRATA_REPOSITORY, cacheDir: env.STRATA_CACHE_DIR, sources: [{ path: source }], settleSeconds: 0.2, minIntervalSeconds: 0.5, mount: mnt }));
  await fs.writeFile(path.join(source, 'notes.txt'), 'first');
  t.equal(strata(['init'], env).code, 0);
  const service = strataAsync(['serve', '--config', configFile], env);
  t.teardown(async () => {
    service.child.kill('SIGTERM');
    await Promise.race([service.done, new Promise((r) => setTimeout(r, 5000))]);
    if (isMounted(mnt)) spawnSync('umount', ['-l', mnt]);
  });
  const inMount = path.join(mnt, 'snapshots', 'latest', source, 'notes.txt');
  const read = async () => fs.readFile(inMount, 'utf8').catch(() => '');
  t.ok(await until(async () => (await read()) === 'first'), 'the first version is browsable');
  await fs.writeFile(path.join(source, 'notes.txt'), 'second');
  t.ok(await until(async () => (await read()) === 'second', 10_000), 'the edit is browsable within seconds');
  t.ok((await fs.readdir(path.join(mnt, 'snapshots'))).length >= 3, 'as a new folder beside the old one');
});

t.test('kill -9 mid-capture, restart: the repository checks out and capture resumes; SIGTERM stops it promptly', async (t) => {
  const { source, env, configFile } = await setup(t);
  for (let i = 0; i < 6; i++) await fs.writeFile(path.join(source, `big-${i}.bin`), randomStream(30 + i, 40 * 1024 * 1024));
  t.equal(strata(['init'], env).code, 0);
  const first = strataAsync(['serve', '--config', configFile], env);
  t.ok(await until(async () => (await packBytes(env.STRATA_REPOSITORY)) > 30 * 1024 * 1024), 'the first capture is under way');
  first.child.kill('SIGKILL');
  await first.done;
  t.equal(snapshots(env).length, 0, 'no half snapshot');
  t.equal(strata(['check'], env).code, 0, 'the repository checks out');

  const second = strataAsync(['serve', '--config', configFile], env);
  t.ok(await until(() => snapshots(env).length === 1), 'capture resumes and completes after the restart');
  const status = strata(['status', '--config', configFile, '--json'], env);
  t.equal(status.code, 0, status.stderr);
  const s = JSON.parse(status.stdout);
  t.equal(s.running, true);
  t.equal(s.sources[0].lastSnapshot.id, snapshots(env)[0].id);

  const other = path.join(path.dirname(source), 'other');
  await fs.mkdir(other);
  await fs.writeFile(path.join(other, 'o.txt'), 'o');
  const alongside = strata(['backup', other], env);
  t.equal(alongside.code, 0, `a one-shot backup works while the service runs: ${alongside.stderr}`);
  await fs.writeFile(path.join(source, 'later.txt'), 'later');
  t.ok(await until(() => snapshots(env).length === 3), 'a later change becomes a snapshot');
  const stopping = Date.now();
  second.child.kill('SIGTERM');
  const result = await second.done;
  t.equal(result.code, 0, result.stderr);
  t.ok(Date.now() - stopping < 5000, 'stops within a few seconds');
  t.equal(strata(['check', '--read-data'], env).code, 0);
});

t.test('strata status says what the service\'s retention kept and forgot, by which rule, and what verification read', async (t) => {
  const { source, env, configFile } = await setup(t, { retention: { keep: { last: 1 }, everyMinutes: 0.05, prune: null } }); // a pass every 3 s: each shows for that long
  await fs.writeFile(path.join(source, 'a.txt'), 'one');
  t.equal(strata(['init'], env).code, 0);
  const service = strataAsync(['serve', '--config', configFile], env);
  t.teardown(async () => {
    service.child.kill('SIGTERM');
    await service.done;
  });
  t.ok(await until(() => snapshots(env).length === 1), 'the first snapshot');
  await fs.writeFile(path.join(source, 'a.txt'), 'two');
  const statusText = () => strata(['status', '--config', configFile], env).stdout;
  t.ok(await until(() => /forgot 1 snapshot, kept 1 \(last 1\)/.test(statusText()), 10_000), 'the status names what was forgotten and the rule that kept the rest');
  t.match(statusText(), /retention: keep last 1/, 'and the policy');
  t.equal(snapshots(env).length, 1, 'one snapshot is left');
  t.ok(await until(() => /verification: part 2 of 7 next\n +last pass [\d-]+ [\d:]+: part 1, \d+ packs? \(.*\) read in \d+ s: no problems/.test(statusText()), 10_000),
    `the default verification read its first part: ${statusText()}`);
});
