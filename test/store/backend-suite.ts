/**
 * The one test suite every Backend passes (memory, local directory, and S3
 * later): the contract in src/store/backend/backend.ts.
 */
import type { Test } from 'tap';
import type { Backend } from '../../src/store/backend/backend.js';
import { Random } from '../kit/random.js';

export function backendSuite(t: Test, make: (t: Test) => Promise<Backend>): void {
  const collect = async (b: Backend, prefix: string) => {
    const names: string[] = [];
    for await (const o of b.list(prefix)) names.push(`${o.name}:${o.size}`);
    return names.sort();
  };

  t.test('save then load returns the same bytes, whole and by range', async (t) => {
    const b = await make(t);
    const data = new Random(1).bytes(100_000);
    await b.save('packs/ab/ab01', data);
    t.same(await b.load('packs/ab/ab01'), data);
    t.same(await b.load('packs/ab/ab01', { offset: 99_990, length: 10 }), data.subarray(99_990));
    t.same(await b.load('packs/ab/ab01', { offset: 99_995, length: 100 }), data.subarray(99_995), 'a range past the end is cut');
    t.equal((await b.stat('packs/ab/ab01')).size, 100_000);
  });

  t.test('missing objects are NOT_FOUND; remove of a missing object is fine', async (t) => {
    const b = await make(t);
    await t.rejects(b.load('snapshots/none'), { code: 'NOT_FOUND' });
    await t.rejects(b.stat('snapshots/none'), { code: 'NOT_FOUND' });
    await b.remove('snapshots/none');
  });

  t.test('list yields exactly the objects under a prefix, with sizes', async (t) => {
    const b = await make(t);
    await b.save('config', Buffer.from('c'));
    await b.save('keys/k1', Buffer.from('key'));
    await b.save('packs/00/0011', Buffer.from('p1'));
    await b.save('packs/ff/ff22', Buffer.from('pack2'));
    await b.save('snapshots/s1', Buffer.from('s'));
    t.same(await collect(b, 'packs/'), ['packs/00/0011:2', 'packs/ff/ff22:5']);
    t.same(await collect(b, 'keys/'), ['keys/k1:3']);
    t.same(await collect(b, 'locks/'), []);
    await b.remove('packs/00/0011');
    t.same(await collect(b, 'packs/'), ['packs/ff/ff22:5']);
  });

  t.test('save replaces an existing object whole', async (t) => {
    const b = await make(t);
    await b.save('locks/l1', Buffer.from('first version'));
    await b.save('locks/l1', Buffer.from('second'));
    t.same((await b.load('locks/l1')).toString(), 'second');
  });

  t.test('names that could escape the namespace are refused', async (t) => {
    const b = await make(t);
    for (const name of ['../x', '/abs', 'a//b', 'a/./b', 'a/../b', 'dir/']) {
      await t.rejects(b.save(name, Buffer.from('x')), TypeError, name);
    }
  });
}
