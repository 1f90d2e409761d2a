/** Repositories for tests: real stack, cheap KDF, private cache dir. */
import path from 'node:path';
import type { Backend } from '../../src/store/backend/backend.js';
import { LocalBackend } from '../../src/store/backend/local.js';
import type { Compression } from '../../src/store/format/records.js';
import { Repository } from '../../src/store/repository.js';
import { tempDir } from './tmp.js';

export const PASSWORD = 'correct horse battery staple';
export const CHEAP_KDF = { N: 1024, r: 8, p: 1 };

export async function newRepository(t: { teardown(fn: () => void | Promise<void>): void }, backend?: Backend,
  opts: { encrypted?: boolean; packSize?: number; compression?: Compression; parityPercent?: number } = {}) {
  const dir = tempDir(t);
  const store = backend ?? new LocalBackend(path.join(dir, 'repo'));
  await Repository.init(store, { password: PASSWORD, kdf: CHEAP_KDF, ...opts });
  const cacheDir = path.join(dir, 'cache');
  const repo = await Repository.open(store, { password: PASSWORD, cacheDir });
  let closed = false;
  t.teardown(async () => { if (!closed) await repo.close(); });
  return {
    repo, backend: store, cacheDir, dir,
    async reopen(opts: { readOnly?: boolean } = {}) {
      if (!closed) await repo.close();
      closed = true;
      return Repository.open(store, { password: PASSWORD, cacheDir, ...opts });
    },
  };
}
