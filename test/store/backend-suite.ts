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

  t.test('a save in several parts (the pack writer\'s way) stores them one after another', async (t) => {
    const b = await make(t);
    const parts = [Buffer.from('head-'), Buffer.alloc(0), new Random(2).bytes(70_000), Buffer.from('-tail')];
    await b.save('packs/cd/cd01', parts);
    t.same(await b.load('packs/cd/cd01'), Buffer.concat(parts));
    t.equal((await b.stat('packs/cd/cd01')).size, 70_010);
  });

  t.test('a listing prefix may stop in the middle of a name', async (t) => {
    const b = await make(t);
    for (const name of ['packs/ab/ab01', 'packs/ab/ab02', 'packs/ac/ac01', 'parity/ab/ab01']) await b.save(name, Buffer.from('x'));
    t.same(await collect(b, 'packs/a'), ['packs/ab/ab01:1', 'packs/ab/ab02:1', 'packs/ac/ac01:1']);
    t.same(await collect(b, 'pa'), ['packs/ab/ab01:1', 'packs/ab/ab02:1', 'packs/ac/ac01:1', 'parity/ab/ab01:1']);
    t.same(await collect(b, 'packs/ab/ab0'), ['packs/ab/ab01:1', 'packs/ab/ab02:1']);
  });

  t.test('saves at once, of different and of the same name, each land whole', async (t) => {
    const b = await make(t);
    const data = Array.from({ length: 8 }, (_, i) => new Random(10 + i).bytes(50_000 + i));
    await Promise.all(data.map((d, i) => b.save(`packs/ee/ee${i}`, d)));
    for (let i = 0; i < data.length; i++) t.same(await b.load(`packs/ee/ee${i}`), data[i]);
    await Promise.all(data.map((d) => b.save('locks/same', d)));
    const last = await b.load('locks/same');
    t.ok(data.some((d) => d.equals(last)), 'the same name holds one of the saves whole, never a mix');
  });

  t.test('names that could escape the namespace are refused', async (t) => {
    const b = await make(t);
    for (const name of ['../x', '/abs', 'a//b', 'a/./b', 'a/../b', 'dir/']) {
      await t.rejects(b.save(name, Buffer.from('x')), TypeError, name);
    }
  });
}
