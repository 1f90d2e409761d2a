/**
 * Pack parity: what it heals (bit rot in up to m shards of a stripe, a cut-off tail
 * of up to m shards a stripe, bytes appended) and what it refuses, never giving back
 * wrong bytes (too much damage, damaged or forged parity).
 */
import { createHash } from 'node:crypto';
import t from 'tap';
import { native } from '../../src/native.js';
import { DATA_SHARDS, encodeParity, healPack, parityProblem, parityShardsFor } from '../../src/store/parity.js';
import { Random } from '../kit/random.js';

const idOf = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

t.test('shards are told by their CRC-32C (the standard check value)', async (t) => {
  t.equal(native.crc32c(Buffer.from('123456789')), 0xe3069283);
  t.equal(native.crc32c(Buffer.alloc(0)), 0);
});

t.test('parity settings: percent of a pack to shards per stripe of 32', async (t) => {
  t.equal(parityShardsFor(0), 0);
  t.equal(parityShardsFor(6), 2, 'the default, 6.25 %');
  t.equal(parityShardsFor(10), 3);
  t.equal(parityShardsFor(100), DATA_SHARDS);
});

for (const size of [1, 100, 4096, 65_536 + 7, 8 * 1024 * 1024 + 3]) {
  t.test(`a pack of ${size} bytes heals from damage within its parity, and only then`, async (t) => {
    const random = new Random(size);
    const pack = Buffer.from(random.bytes(size));
    const id = idOf(pack);
    const parity = await encodeParity(pack, 2);
    t.ok(parity.length < (size < 65_536 ? 1024 + size * 0.2 : size * (size < 2 ** 20 ? 0.09 : 0.065)), `parity is ${parity.length} bytes`);
    t.equal(parityProblem(parity, id, size), undefined, 'an intact parity object is found intact');
    const shardSize = Math.max(256, Math.ceil(Math.ceil(size / 128) / 64) * 64);
    const shards = Math.ceil(size / shardSize);
    const stripes = Math.ceil(shards / DATA_SHARDS);

    const intact = await healPack(pack, parity, id);
    t.equal(intact.shardsRebuilt, 0, 'an intact pack needs nothing');

    // Bit rot: two shards of every stripe (the first two of each), a byte flipped in each.
    const rotten = Buffer.from(pack);
    for (let s = 0; s < Math.min(shards, 2 * stripes); s++) rotten[Math.min(size - 1, s * shardSize + random.int(shardSize))] ^= 0x20;
    const healed = await healPack(rotten, parity, id);
    t.ok(healed.pack.equals(pack), 'bit rot in two shards a stripe heals');
    t.equal(healed.shardsRebuilt, Math.min(shards, 2 * stripes));

    // A cut-off tail: the last 2 shards of every stripe.
    const cut = pack.subarray(0, Math.max(0, (shards - 2 * stripes) * shardSize));
    t.ok((await healPack(cut, parity, id)).pack.equals(pack), `a tail of ${size - cut.length} bytes cut off heals`);
    t.ok((await healPack(Buffer.concat([pack, Buffer.from('appended')]), parity, id)).pack.equals(pack), 'bytes appended are dropped');

    if (shards >= 3) {
      const worse = Buffer.from(pack);
      for (const s of [0, stripes, 2 * stripes]) worse[s * shardSize] ^= 1; // three shards of the first stripe
      await t.rejects(healPack(worse, parity, id), { code: 'CORRUPT', message: /cannot be healed: stripe 1 of \d+ has more damaged shards than parity/ }, 'three shards in one stripe: refused');
    }
    const damagedParity = Buffer.from(parity);
    damagedParity[damagedParity.length >> 1] ^= 1;
    t.match(parityProblem(damagedParity, id, size), /damaged/, 'damaged parity is known as such');
    await t.rejects(healPack(rotten, damagedParity, id), { code: 'CORRUPT', message: /parity of pack .* is damaged/ });
    // Parity made for other bytes of the same size, its checksum right: healing gives something else, refused by the name.
    const other = Buffer.from(pack);
    other[0] ^= 0xff;
    await t.rejects(healPack(rotten, await encodeParity(other, 2), id), { code: 'CORRUPT', message: /does not hash to its name/ }, 'forged parity: refused');
  });
}
