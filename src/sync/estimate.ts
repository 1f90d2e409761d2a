/**
 * A quick count of what a backup will see (files and bytes, by lstat only), so
 * a first backup, which has no parent snapshot to go by, can show an ETA. It
 * runs beside the capture and reports as it goes; it never reads content.
 */
import path from 'node:path';
import fastq from 'fastq';
import { isDirectory, isRegularFile, joinPath, scanDir } from './local-fs.js';

/** Folders listed at once: the count must stay ahead of a capture that lists 16 at a time. */
const CONCURRENCY = 16;

export async function estimateSize(paths: string[], onTotal: (bytes: number) => void, signal?: AbortSignal): Promise<number> {
  let bytes = 0;
  let outstanding = 0;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => { finish = resolve; });
  const visit = (dir: Buffer): void => {
    outstanding++;
    scans.push(dir).catch(() => {}).finally(() => { if (--outstanding === 0) finish(); });
  };
  const scans = fastq.promise(async (dir: Buffer) => {
    if (signal?.aborted) return;
    const listing = await scanDir(dir).catch(() => undefined);
    for (let i = 0; i < (listing?.count ?? 0); i++) {
      const stat = listing!.stat(i);
      if (typeof stat === 'string') continue;
      if (isRegularFile(stat)) bytes += stat.size;
      else if (isDirectory(stat)) visit(joinPath(dir, listing!.name(i)));
    }
    onTotal(bytes);
  }, CONCURRENCY);
  for (const p of paths) visit(Buffer.from(path.resolve(p)));
  await finished;
  return bytes;
}
