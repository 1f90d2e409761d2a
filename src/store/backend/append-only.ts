/**
 * A Backend → Backend wrapper for a copy that must keep everything it holds
 * (`--append-only`): nothing is removed from it and no object is replaced; only lock
 * files, which come and go with the processes that hold them, are exempt. It guards
 * against Strata itself (a `--mirror-deletions` run, a prune of the copy opened
 * through it); a compromised machine that can write the copy's disk is stopped only
 * by the storage itself (S3 Object Lock, or a target whose own host enforces it).
 */
import { errors, isStrataError } from '../errors.js';
import { wrapBackend, type Backend } from './backend.js';

const exempt = (name: string): boolean => name.startsWith('locks/');

export function appendOnly(backend: Backend): Backend {
  return wrapBackend(backend, {
    async save(name, data) {
      if (!exempt(name)) {
        const held = await backend.stat(name).then(() => true, (e: unknown) => {
          if (isStrataError(e, 'NOT_FOUND')) return false;
          throw e;
        });
        if (held) throw errors.backend(`${backend.location} is append-only: ${name} is there already and is not replaced`);
      }
      await backend.save(name, data);
    },
    async remove(name) {
      if (!exempt(name)) throw errors.backend(`${backend.location} is append-only: ${name} is not removed`);
      await backend.remove(name);
    },
  });
}
