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
