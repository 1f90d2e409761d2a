/**
 * Capture's cost per entry as a wide, deep tree grows: a first and a no-change
 * backup of a generated tree of about 50,000 entries and of one of about
 * 500,000 (wider and one level deeper), caches dropped; time per entry of the
 * large tree ÷ that of the small one should stay within 1.2.
 */
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { Random } from '../test/kit/random.js';
import { text } from './corpus.js';

type Timed = (cmd: string[], env: Record<string, string>) => { seconds: number; cpu: number; rssMiB: number };

/** Folders `fanOut` wide at every level down to `depth`, `files` small text files in each. */
const SHAPES = [
  { name: '50k', fanOut: 6, depth: 4, files: 31 },
  { name: '500k', fanOut: 7, depth: 5, files: 25 },
];

export interface ScaleMeasure {
  name: string;
  entries: number;
  first: { seconds: number; cpu: number; rssMiB: number };
  noChange: { seconds: number; cpu: number; rssMiB: number };
}

async function buildTree(dir: string, shape: (typeof SHAPES)[number]): Promise<number> {
  const marker = path.join(dir, '.strata-bench-scale-v1');
  if (existsSync(marker)) return Number(await fs.readFile(marker, 'utf8'));
  await fs.rm(dir, { recursive: true, force: true });
  const rnd = new Random(shape.fanOut * 100 + shape.depth);
  let entries = 0;
  const fill = async (folder: string, level: number): Promise<void> => {
    await fs.mkdir(folder, { recursive: true });
    entries++;
    await Promise.all(Array.from({ length: shape.files }, (_, i) => fs.writeFile(path.join(folder, `file-${i}.txt`), text(rnd, 50 + rnd.int(2000)))));
    entries += shape.files;
    if (level < shape.depth) for (let i = 0; i < shape.fanOut; i++) await fill(path.join(folder, `dir-${i}`), level + 1);
  };
  await fill(dir, 0);
  await fs.writeFile(marker, String(entries));
  return entries;
}

export async function scaleBench(benchDir: string, strataBin: string[], timed: Timed, dropCaches: () => boolean): Promise<ScaleMeasure[]> {
  const results: ScaleMeasure[] = [];
  for (const shape of SHAPES) {
    const tree = path.join(benchDir, `scale-${shape.name}`);
    console.error(`bench: scale tree ${shape.name} (built once, cached)`);
    const entries = await buildTree(tree, shape);
    const repo = path.join(benchDir, 'repo-scale');
    const env = { STRATA_REPOSITORY: repo, STRATA_PASSWORD: 'bench-password', STRATA_CACHE_DIR: path.join(benchDir, 'cache-scale') };
    for (const d of [repo, env.STRATA_CACHE_DIR]) await fs.rm(d, { recursive: true, force: true });
    timed([...strataBin, 'init', '-q'], env);
    dropCaches();
    const first = timed([...strataBin, 'backup', '-q', tree], env);
    dropCaches();
    const noChange = timed([...strataBin, 'backup', '-q', tree], env);
    console.error(`  ${entries} entries: first ${first.seconds.toFixed(2)} s, no-change ${noChange.seconds.toFixed(2)} s`);
    results.push({ name: shape.name, entries, first, noChange });
  }
  return results;
}

/** Lines for the report: µs per entry of each tree and the growth between them. */
export function scaleReport(results: ScaleMeasure[]): string[] {
  const perEntry = (s: number, n: number) => (s / n) * 1e6;
  const lines = ['', 'Capture cost per entry as the tree grows (caches dropped):', '',
    '| tree | entries | first backup s (CPU s) | µs per entry | no-change s (CPU s) | µs per entry | peak RSS MiB |', '| --- | ---: | ---: | ---: | ---: | ---: | ---: |'];
  for (const r of results) {
    lines.push(`| ${r.name} | ${r.entries.toLocaleString('en')} | ${r.first.seconds.toFixed(2)} (${r.first.cpu.toFixed(2)}) | ${perEntry(r.first.seconds, r.entries).toFixed(1)} | ${r.noChange.seconds.toFixed(2)} (${r.noChange.cpu.toFixed(2)}) | ${perEntry(r.noChange.seconds, r.entries).toFixed(1)} | ${Math.max(r.first.rssMiB, r.noChange.rssMiB).toFixed(0)} |`);
  }
  const [small, large] = results;
  if (small && large) {
    const growth = (pick: (r: ScaleMeasure) => number) => ((pick(large) / large.entries) / (pick(small) / small.entries)).toFixed(2);
    lines.push('', `Time per entry, ${large.name} ÷ ${small.name}: first backup ${growth((r) => r.first.seconds)}×, no-change ${growth((r) => r.noChange.seconds)}× (target ≤ 1.2×).`);
  }
  return lines;
}
