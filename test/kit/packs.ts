/** The pack files of a local repository, as a test looks at them from outside. */
import { promises as fs } from 'node:fs';
import path from 'node:path';

export async function packFiles(repo: string): Promise<string[]> {
  const files: string[] = [];
  for (const sub of await fs.readdir(path.join(repo, 'packs')).catch(() => [])) {
    for (const f of await fs.readdir(path.join(repo, 'packs', sub)).catch(() => [])) files.push(path.join(repo, 'packs', sub, f));
  }
  return files;
}

/** Total bytes in packs (files vanishing meanwhile count as empty). */
export async function packBytes(repo: string): Promise<number> {
  let total = 0;
  for (const f of await packFiles(repo)) total += (await fs.stat(f).catch(() => ({ size: 0 }))).size;
  return total;
}

/** The largest pack: the one holding a test's big data chunk. */
export async function largestPack(repo: string): Promise<string> {
  const files = await packFiles(repo);
  const sizes = await Promise.all(files.map(async (f) => (await fs.stat(f)).size));
  return files[sizes.indexOf(Math.max(...sizes))];
}

/**
 * Flips a bit at `at` and in two more shards of the same parity stripe (parity.ts's layout):
 * damage that 2 parity shards a stripe cannot heal. Returns the pack's bytes as they were.
 */
export async function damageBeyondParity(file: string, at = 0): Promise<Buffer> {
  const before = await fs.readFile(file);
  const bytes = Buffer.from(before);
  const shardSize = Math.max(256, Math.ceil(Math.ceil(bytes.length / 128) / 64) * 64);
  const stripes = Math.ceil(Math.ceil(bytes.length / shardSize) / 32);
  const first = Math.floor(at / shardSize);
  for (const shard of [first, first + stripes, first + 2 * stripes]) bytes[Math.min(bytes.length - 1, shard * shardSize + (at % shardSize))] ^= 0x04;
  // In one step, so that a reader meanwhile sees the pack either intact or damaged, never half written.
  await fs.writeFile(`${file}.damaged`, bytes);
  await fs.rename(`${file}.damaged`, file);
  return before;
}
