/**
 * A Backend → Backend wrapper that limits the rate of what is saved (`--limit-upload`):
 * each save waits until the bytes before it would have gone at that rate. Loads and
 * everything else pass straight through.
 */
import { partsOf, wrapBackend, type Backend } from './backend.js';

export function throttledUploads(backend: Backend, bytesPerSecond: number): Backend {
  let freeAt = 0;
  return wrapBackend(backend, {
    async save(name, data) {
      const size = partsOf(data).reduce((n, p) => n + p.length, 0);
      const now = Date.now();
      const start = Math.max(now, freeAt);
      freeAt = start + (size / bytesPerSecond) * 1000;
      if (start > now) await new Promise((resolve) => setTimeout(resolve, start - now));
      await backend.save(name, data);
    },
  });
}
