/**
 * A real single-node Ceph with its RADOS Gateway on loopback, for the S3 tests
 * (scripts/ceph/ceph-rgw-up.sh, copied from the team's shared tools: it installs
 * Debian's ceph packages when they are missing). Ports are free ones, so two test
 * files can each run their own; it is stopped when the test ends.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { skipUnlessReal } from './real.js';
import { freePort } from './port.js';
import { tempDir } from './tmp.js';

const SCRIPTS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../scripts/ceph');

export interface Ceph {
  /** http://127.0.0.1:port */
  endpoint: string;
  /** AWS_ACCESS_KEY_ID and the rest, for a child process or the SDK. */
  env: Record<string, string>;
}

/** Starts a cluster for this test (stopped at its end); undefined, with the test skipped or failed under CI's switch, when it cannot start. */
export async function startCeph(t: Test): Promise<Ceph | undefined> {
  const dir = path.join(tempDir(t, 'strata-ceph-'), 'cluster');
  const [rgw, mon, monV1] = [await freePort(), await freePort(), await freePort()];
  const up = spawnSync(path.join(SCRIPTS, 'ceph-rgw-up.sh'), [dir, String(rgw), '--store', 'memstore'], {
    encoding: 'utf8', env: { ...process.env, CEPH_MON_PORT: String(mon), CEPH_MON_V1_PORT: String(monV1) },
  });
  t.teardown(() => { spawnSync(path.join(SCRIPTS, 'ceph-rgw-down.sh'), [dir]); });
  if (up.status !== 0) {
    const problem = skipUnlessReal(`Ceph's gateway did not start: ${up.stderr.trim().split('\n').slice(-3).join(' / ')}`);
    if (problem) t.pass(problem, { skip: problem });
    return undefined;
  }
  const env: Record<string, string> = {};
  for (const m of up.stdout.matchAll(/^export (\w+)=(.*)$/gm)) env[m[1]!] = m[2]!.replace(/^'(.*)'$/, '$1');
  return { endpoint: env.S3_ENDPOINT!, env };
}
