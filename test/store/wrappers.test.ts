/**
 * Backend → Backend wrappers: each passes the shared backend suite over a real
 * backend, and the retrying one tries again on failures that pass (and only on
 * those), with a listing cut off going on without repeating a name.
 */
import path from 'node:path';
import t from 'tap';
import { wrapBackend } from '../../src/store/backend/backend.js';
import { LocalBackend } from '../../src/store/backend/local.js';
import { MemoryBackend } from '../../src/store/backend/memory.js';
import { isPassing, retrying } from '../../src/store/backend/retry.js';
import { throttledUploads } from '../../src/store/backend/throttle.js';
import { FaultyBackend, lastingError } from '../kit/faulty.js';
import { tempDir } from '../kit/tmp.js';
import { backendSuite } from './backend-suite.js';

t.test('retrying, over a local folder', async (t) => backendSuite(t, async (t) => retrying(new LocalBackend(path.join(tempDir(t), 'repo')))));
t.test('throttled uploads', async (t) => backendSuite(t, async () => throttledUploads(new MemoryBackend(), 1e9)));

t.test('a wrapper keeps what the backend it wraps offers beyond the operations', async (t) => {
  const root = path.join(tempDir(t), 'repo');
  const wrapped = wrapBackend(new LocalBackend(root), {});
  t.equal(wrapped.location, root);
  t.equal(wrapped.localPath?.('packs/ab/ab01'), path.join(root, 'packs', 'ab', 'ab01'), 'readers still find the local file');
  const made: string[] = [];
  const locked = { ...wrapBackend(new MemoryBackend(), {}), create: async () => { made.push('bucket'); }, protection: { lockDays: 7, renew: async () => 3 } };
  const around = wrapBackend(locked, {});
  await around.create?.();
  t.same(made, ['bucket'], 'creating the bucket');
  t.match(around.protection, { lockDays: 7 });
  t.equal(await around.protection?.renew(), 3, 'extending its locks');
  const plain = wrapBackend(new MemoryBackend(), {});
  t.same([plain.localPath, plain.create, plain.protection], [undefined, undefined, undefined], 'and offers nothing the backend does not');
});

t.test('retrying: failures that pass are tried again, with every operation', async (t) => {
  const faulty = new FaultyBackend(new MemoryBackend());
  const b = retrying(faulty.backend, { firstPauseMs: 1 });
  for (const op of ['save', 'load', 'stat', 'remove'] as const) faulty.fail(op, { times: 2 });
  await b.save('packs/aa/aa01', Buffer.from('pack'));
  t.equal((await b.load('packs/aa/aa01')).toString(), 'pack');
  t.equal((await b.stat('packs/aa/aa01')).size, 4);
  await b.remove('packs/aa/aa01');
  t.same(faulty.calls, { save: 3, load: 3, stat: 3, list: 0, remove: 3 }, 'two failures, then the third try of each');
});

t.test('retrying: a listing cut off goes on, and names no object twice', async (t) => {
  const faulty = new FaultyBackend(new MemoryBackend());
  for (const name of ['packs/aa/aa01', 'packs/bb/bb01', 'packs/cc/cc01']) await faulty.backend.save(name, Buffer.from('x'));
  faulty.fail('list', { times: 2 });
  const names: string[] = [];
  for await (const o of retrying(faulty.backend, { firstPauseMs: 1 }).list('packs/')) names.push(o.name);
  t.same(names.sort(), ['packs/aa/aa01', 'packs/bb/bb01', 'packs/cc/cc01']);
  t.equal(faulty.calls.list, 3);
});

t.test('retrying: what does not pass fails at once, and a failure that lasts gives up after the tries', async (t) => {
  const faulty = new FaultyBackend(new MemoryBackend());
  const b = retrying(faulty.backend, { attempts: 3, firstPauseMs: 1 });
  await t.rejects(b.load('snapshots/none'), { code: 'NOT_FOUND' });
  t.equal(faulty.calls.load, 1, 'a missing object is not asked for again');
  faulty.fail('save', {}, lastingError);
  await t.rejects(b.save('config', Buffer.from('c')), { code: 'BACKEND', message: /denied access to config/ });
  t.equal(faulty.calls.save, 1, 'access denied is not tried again');
  faulty.fail('stat', { times: Infinity });
  const gaveUp = await b.stat('config').catch((e: unknown) => e);
  t.match(gaveUp, { code: 'BACKEND', message: /stat config in memory: failed: connection reset \(after 3 tries\)/ });
  t.ok(isPassing(gaveUp), 'and says what it was, for a wrapper around it');
  t.equal(faulty.calls.stat, 3);
});
