/**
 * Memory with a large repository: fills a repository's index with 10 million
 * synthetic chunk entries, then measures a real backup against it (every chunk
 * lookup goes through that index). The target is ≤ 256 MiB peak RSS.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalBackend } from '../src/store/backend/local.js';
import { BlobIndex } from '../src/store/index-db.js';
import type { BlobLocation } from '../src/store/format/records.js';
import { Repository } from '../src/store/repository.js';

const CHUNKS = 10_000_000;
const PER_PACK = 10_000;
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export async function synthIndex(benchDir: string, source: string): Promise<{ rssMiB: number; seconds: number; chunks: number }> {
  const repoDir = path.join(benchDir, 'repo-synth');
  const cacheDir = path.join(benchDir, 'cache-synth');
  const marker = path.join(benchDir, 'synth-index-done');
  const env = { STRATA_REPOSITORY: repoDir, STRATA_PASSWORD: 'synth', STRATA_CACHE_DIR: cacheDir };
  const ready = await fs.readFile(marker, 'utf8').catch(() => '');
  if (!ready) {
    await fs.rm(repoDir, { recursive: true, force: true });
    await fs.rm(cacheDir, { recursive: true, force: true });
    const config = await Repository.init(new LocalBackend(repoDir), { password: 'synth' });
    const index = await BlobIndex.open(path.join(cacheDir, config.id, 'index'), { shared: false });
    console.error(`bench: writing ${CHUNKS.toLocaleString('en')} synthetic index entries`);
    for (let p = 0; p < CHUNKS / PER_PACK; p++) {
      const blobs: BlobLocation[] = [];
      for (let i = 0; i < PER_PACK; i++) {
        const id = createHash('sha256').update(`chunk-${p}-${i}`).digest();
        blobs.push({ type: 'data', id, offset: i * 1000, length: 1_000_000, rawLength: 1_200_000, compressed: true });
      }
      await index.addPack(createHash('sha256').update(`pack-${p}`).digest('hex'), blobs);
    }
    await index.close();
    await fs.writeFile(marker, 'yes');
  }
  const out = path.join(benchDir, 'time-synth.out');
  const r = spawnSync('/usr/bin/time', ['-f', '%e %M', '-o', out, process.execPath, path.join(root, 'bin/strata.js'), 'backup', '-q', source], {
    env: { ...process.env, ...env }, encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`synthetic-index backup failed: ${r.stderr}`);
  const [seconds, kib] = readFileSync(out, 'utf8').trim().split('\n').at(-1)!.split(' ').map(Number);
  return { rssMiB: kib / 1024, seconds, chunks: CHUNKS };
}
