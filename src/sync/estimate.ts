/**
 * A quick count of what a backup will see (files and bytes, by lstat only), so
 * a first backup, which has no parent snapshot to go by, can show an ETA. It
 * runs beside the capture and reports as it goes; it never reads content.
 */
import path from 'node:path';
import { isDirectory, isRegularFile, joinPath, scanDir } from './local-fs.js';

export async function estimateSize(paths: string[], onTotal: (bytes: number) => void, signal?: AbortSignal): Promise<number> {
  let bytes = 0;
  const walk = async (dir: Buffer): Promise<void> => {
    if (signal?.aborted) return;
    const listed = await scanDir(dir).catch(() => []);
    const subdirs: Buffer[] = [];
    for (const { name, stat } of listed) {
      if (typeof stat === 'string') continue;
      if (isRegularFile(stat)) bytes += stat.size;
      else if (isDirectory(stat)) subdirs.push(joinPath(dir, name));
    }
    onTotal(bytes);
    for (const sub of subdirs) await walk(sub);
  };
  for (const p of paths) await walk(Buffer.from(path.resolve(p)));
  return bytes;
}
