// Transpiles src/ to dist/ with esbuild (already installed with tsx): the `strata`
// command then starts in ~0.2 s and ~25 MiB less memory than through the tsx loader.
// Run by `npm install`; bin/strata.js falls back to tsx when dist/ is missing or older than src/.
import { readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const sources = [];
const walk = (dir) => {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p);
    else if (p.endsWith('.ts')) sources.push(p);
  }
};
walk(path.join(root, 'src'));
await build({ entryPoints: sources, outdir: path.join(root, 'dist'), outbase: path.join(root, 'src'), format: 'esm', platform: 'node', target: 'node20', logLevel: 'warning' });
writeFileSync(path.join(root, 'dist', 'package.json'), '{"type":"module"}\n');
