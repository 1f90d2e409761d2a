import path from 'node:path';
import { promises as fs } from 'node:fs';
import t from 'tap';
import { LocalBackend } from '../../src/store/backend/local.js';
import { MemoryBackend } from '../../src/store/backend/memory.js';
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
