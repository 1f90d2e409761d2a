/**
 * The benchmark corpus: a deterministic NAS-like share of about 1 GiB (≈20k
 * small text files in deep folders, medium and large compressible and random
 * files, duplicates, symlinks) and a deterministic 2% mutation of it.
 */
import { createCipheriv } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { Random } from '../test/kit/random.js';

const MARKER = '.strata-bench-corpus-v1';
const WORDS = ['the', 'share', 'invoice', 'backup', 'project', 'meeting', 'notes', 'report', 'quarter', 'budget', 'draft', 'final',
  'photo', 'client', 'order', 'total', 'amount', 'delivery', 'status', 'review', '2024', '2025', '2026', 'alpha', 'beta', 'gamma'].map((w) => Buffer.from(`${w} `));

/** Compressible text, about 3:1 with LZ4, seeded. */
export function text(rnd: Random, n: number): Buffer {
  const buf = Buffer.allocUnsafe(n + 16);
  let i = 0;
  while (i < n) {
    const r = rnd.next();
    const w = WORDS[r % WORDS.length];
    w.copy(buf, i);
    i += w.length;
    if ((r >>> 8) % 12 === 0) {
      buf.write(`${r >>> 12}\n`, i);
      i += String(r >>> 12).length + 1;
    }
  }
  return buf.subarray(0, n);
}

export function randomBytes(seed: number, n: number): Buffer {
  const key = Buffer.alloc(16);
  key.writeUInt32LE(seed);
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(n));
}

async function write(file: string, data: Buffer): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, data);
}

/** Creates the corpus in `dir` unless a complete one is there; returns its size in bytes. */
export async function buildCorpus(dir: string): Promise<number> {
  const marker = path.join(dir, MARKER);
  if (existsSync(marker)) return Number(await fs.readFile(marker, 'utf8'));
  await fs.rm(dir, { recursive: true, force: true });
  const rnd = new Random(2026);
  let total = 0;
  const add = async (rel: string, data: Buffer) => {
    await write(path.join(dir, rel), data);
    total += data.length;
  };
  // ~20k small text files in department/project/year/month folders, some deep.
  for (let i = 0; i < 20_000; i++) {
    const dept = `dept-${i % 12}`;
    const project = `project-${(i >> 4) % 40}`;
    const deep = i % 50 === 0 ? '/a/b/c/d/e/f/g/h' : '';
    await add(`office/${dept}/${project}/${2020 + (i % 7)}/${(i % 12) + 1}${deep}/doc-${i}.txt`, text(rnd, 500 + rnd.int(14_000)));
  }
  // Medium compressible and random files.
  for (let i = 0; i < 60; i++) await add(`media/logs/app-${i}.log`, text(rnd, 1_000_000 + rnd.int(3_000_000)));
  for (let i = 0; i < 40; i++) await add(`media/photos/img-${i}.jpg`, randomBytes(100 + i, 1_000_000 + rnd.int(4_000_000)));
  // Large files: a VM image-like random file, archives, a big log.
  await add('vm/disk.img', randomBytes(1, 200 * 1024 * 1024));
  await add('archives/2024.tar', randomBytes(2, 120 * 1024 * 1024));
  await add('archives/db-dump.sql', text(rnd, 150 * 1024 * 1024));
  // Duplicates: copies of some medium files under other names.
  for (let i = 0; i < 10; i++) {
    const data = await fs.readFile(path.join(dir, `media/photos/img-${i}.jpg`));
    await add(`users/alice/copies/img-${i}-copy.jpg`, data);
  }
  // Symlinks.
  for (let i = 0; i < 50; i++) await fs.symlink(`../../office/dept-${i % 12}`, path.join(dir, 'users/alice/copies', `link-${i}`)).catch(() => {});
  await fs.writeFile(marker, String(total));
  return total;
}

/** Changes about 2% of the corpus: edits, appends, a block inside a large file, new and deleted files. */
export async function mutateCorpus(dir: string, round: number): Promise<void> {
  const rnd = new Random(7000 + round);
  for (let i = 0; i < 400; i++) {
    const n = rnd.int(20_000);
    const file = path.join(dir, `office/dept-${n % 12}/project-${(n >> 4) % 40}/${2020 + (n % 7)}/${(n % 12) + 1}${n % 50 === 0 ? '/a/b/c/d/e/f/g/h' : ''}/doc-${n}.txt`);
    await fs.writeFile(file, text(rnd, 500 + rnd.int(14_000)));
  }
  await fs.appendFile(path.join(dir, 'archives/db-dump.sql'), text(rnd, 8 * 1024 * 1024));
  const img = await fs.open(path.join(dir, 'vm/disk.img'), 'r+');
  await img.write(randomBytes(900 + round, 4 * 1024 * 1024), 0, 4 * 1024 * 1024, 64 * 1024 * 1024);
  await img.close();
  for (let i = 0; i < 5; i++) await write(path.join(dir, `media/new/round-${round}-${i}.log`), text(rnd, 500_000));
  await fs.rm(path.join(dir, `media/logs/app-${round % 60}.log`), { force: true });
}
