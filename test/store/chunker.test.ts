import t from 'tap';
import { defaultChunkerParams, makeCutter, type CutFunction } from '../../src/store/chunker.js';
import { Random } from '../kit/random.js';

// Boundaries of 24 MiB of seeded bytes under a fixed gear seed: changing them
// would change every chunk id of every repository, so they are pinned.
const GOLDEN = [597307, 3187449, 658717, 1234808, 1988760, 2400658, 1102038, 1386814, 1255033, 697485, 1212471, 2014347,
  543809, 1008505, 1861302, 1559120, 1311692, 667510, 477999];

const params = defaultChunkerParams(Buffer.alloc(32, 7));
const data = new Random(42).bytes(24 * 1024 * 1024);

function chunkAll(cut: CutFunction, buf: Buffer): number[] {
  const sizes: number[] = [];
  for (let start = 0; start < buf.length;) {
    const n = cut(buf, start, buf.length, true);
    sizes.push(n);
    start += n;
  }
  return sizes;
}

t.test('the C chunker and its TypeScript twin cut at the pinned boundaries', async (t) => {
  t.same(chunkAll(makeCutter(params, 'native'), data), GOLDEN, 'native');
  t.same(chunkAll(makeCutter(params, 'ts'), data), GOLDEN, 'typescript');
});

t.test('a cut never depends on how much data lies beyond it', async (t) => {
  const cut = makeCutter(params);
  const first = GOLDEN[0];
  t.equal(cut(data, 0, first + 10, false), first, 'found with a short window');
  t.equal(cut(data, 0, first - 1, false), 0, 'asks for more data rather than cutting early');
  t.equal(cut(data, 0, 1000, true), 1000, 'the end of a file ends the last chunk');
  t.equal(cut(data, 0, 0, true), 0, 'an empty file has no chunk');
});

t.test('chunks stay within the minimum and maximum sizes', async (t) => {
  const zeros = Buffer.alloc(20 * 1024 * 1024);
  const sizes = chunkAll(makeCutter(params), zeros);
  t.ok(sizes.slice(0, -1).every((n) => n >= params.minSize && n <= params.maxSize), `${sizes}`);
  t.equal(sizes.reduce((a, b) => a + b, 0), zeros.length);
});

t.test('an insertion early in a file changes only the chunks around it', async (t) => {
  const cut = makeCutter(params);
  const edited = Buffer.concat([data.subarray(0, 100_000), Buffer.from('inserted bytes'), data.subarray(100_000)]);
  const before = chunkAll(cut, data);
  const after = chunkAll(cut, edited);
  t.same(after.slice(2), before.slice(2), 'boundaries resynchronise after the edit');
});
