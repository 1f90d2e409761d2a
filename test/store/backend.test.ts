import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { LocalBackend } from '../../src/store/backend/local.js';
import { MemoryBackend } from '../../src/store/backend/memory.js';
import { processSpace } from '../../src/store/process.js';
import { tempDir } from '../kit/tmp.js';
import { backendSuite } from './backend-suite.js';

t.test('memory backend', async (t) => backendSuite(t, async () => new MemoryBackend()));
t.test('local backend', async (t) => backendSuite(t, async (t) => new LocalBackend(path.join(tempDir(t), 'repo'))));

t.test('local backend: a half-written temp file is never listed and stale ones are swept', async (t) => {
  const root = path.join(tempDir(t), 'repo');
  const b = new LocalBackend(root);
  await b.save('packs/aa/aa11', Buffer.from('whole'));
  await fs.writeFile(path.join(root, 'tmp', 'aa22.deadbeef'), 'half');
  const listed: string[] = [];
  for await (const o of b.list('')) listed.push(o.name);
  t.same(listed, ['packs/aa/aa11']);
  await b.sweepTemporaryFiles(Date.now() + 2 * 24 * 3600 * 1000);
  t.same(await fs.readdir(path.join(root, 'tmp')), []);
});

t.test('local backend: temporary files of a dead process of this host (boot, pid namespace) are swept at once, others only when a day old', async (t) => {
  const root = path.join(tempDir(t), 'repo');
  const b = new LocalBackend(root);
  await b.save('packs/aa/aa11', Buffer.from('whole'));
  const dead = spawnSync(process.execPath, ['-e', '']).pid!; // a pid that has just exited
  const here = processSpace();
  const files = {
    dead: `aa22.0123456789ab.${dead}.${here}`,
    live: `aa33.0123456789ab.${process.pid}.${here}`,
    otherHost: `aa44.0123456789ab.${dead}.${here === '0123456789ab' ? 'ba9876543210' : '0123456789ab'}`, // another host or container
  };
  for (const name of Object.values(files)) await fs.writeFile(path.join(root, 'tmp', name), 'half');
  await b.sweepTemporaryFiles();
  t.same((await fs.readdir(path.join(root, 'tmp'))).sort(), [files.live, files.otherHost].sort(), 'only the dead process\'s file goes');
  await b.sweepTemporaryFiles(Date.now() + 2 * 24 * 3600 * 1000);
  t.same(await fs.readdir(path.join(root, 'tmp')), [], 'a day later the rest go too');
});
