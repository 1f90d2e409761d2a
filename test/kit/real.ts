/**
 * Skips for tests of real components (FUSE, Samba, Ceph, a browser). Where CI sets
 * STRATA_REQUIRE_REAL=1, a test that would skip is a failure instead: they never
 * skip silently there.
 */
import t from 'tap';
import { canMount } from './tmp.js';

export function skipUnlessReal(problem: string | false): string | false {
  if (problem && process.env.STRATA_REQUIRE_REAL === '1') t.fail(`${problem}, and CI requires this test to run (STRATA_REQUIRE_REAL=1)`);
  return problem;
}

export const mountSkip = (): string | false =>
  skipUnlessReal(canMount() ? false : 'mounting is not permitted here (needs root and /dev/fuse)');
