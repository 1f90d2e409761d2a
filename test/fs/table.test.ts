/**
 * The inode table in C on its own (test/native/table_test.c), built with AddressSanitizer
 * and UBSan: hostile batches are refused, ids are never reused, what the kernel holds is
 * never freed, and the budget is kept; any memory error fails the test.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { tempDir } from '../kit/tmp.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

t.test('the inode table under ASan and UBSan', async (t) => {
  const bin = path.join(tempDir(t), 'table_test');
  const cc = spawnSync('cc', ['-std=c11', '-D_GNU_SOURCE', '-g', '-O1', '-fsanitize=address,undefined', '-fno-sanitize-recover=all',
    '-Wall', '-Wextra', '-Werror', path.join(root, 'native/fuse_table.c'), path.join(root, 'test/native/table_test.c'), '-lpthread', '-o', bin], { encoding: 'utf8' });
  t.equal(cc.status, 0, `it builds: ${cc.stderr}`);
  const run = spawnSync(bin, [], { encoding: 'utf8', env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1' } });
  const failed = run.stdout.split('\n').filter((l) => l.startsWith('not ok'));
  t.same(failed, [], 'every check holds');
  t.match(run.stdout, /^1\.\.\d+$/m, 'and it ran to the end');
  t.equal(run.status, 0, `no memory error: ${run.stderr.slice(0, 2000)}`);
});
