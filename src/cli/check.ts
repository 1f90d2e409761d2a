/** What `strata check` and `strata repair snapshots` print, and the service's verification in `strata status`. */
import type { CheckProblem, CheckResult } from '../sync/check.js';
import type { RepairOutcome } from '../sync/repair.js';
import type { VerifyStatus } from '../sync/verify.js';
import { count, formatBytes } from './output.js';

/** Files named in the text report per problem; --json names up to check's own limit. */
const NAMED_IN_TEXT = 10;

export function problemLines(p: CheckProblem): string[] {
  if (!p.filesAffected) return [`${p.object}: ${p.message}`];
  const more = p.filesAffected - Math.min(p.files.length, NAMED_IN_TEXT);
  return [
    `${p.object}: ${p.message}`,
    `  affects ${count(p.filesAffected, 'file or folder', 'files or folders')} in ${count(p.snapshots.length, 'snapshot')}: ` +
      `${p.files.slice(0, NAMED_IN_TEXT).join(', ')}${more > 0 ? `, and ${more} more (--json lists them)` : ''}`,
  ];
}

export function checkLines(result: CheckResult, readData: boolean): string[] {
  const { unreached } = result;
  const read = readData ? `, ${result.packsRead} read whole (${formatBytes(result.bytesRead)}, ${count(result.blobsRead, 'blob')} verified)` : '';
  return [
    ...(unreached.trees ? [
      `${count(unreached.trees, 'tree')} reached by no snapshot, ${unreached.tops} of them on top` +
        `${unreached.examples.length ? ` (holding ${unreached.examples.map((e) => e.names.slice(0, 3).join(', ') || 'nothing').join('; ')})` : ''}: ` +
        'snapshots forgotten but not pruned yet, a backup running or interrupted, or snapshot records that were lost',
    ] : []),
    ...result.healed.map((h) => `healed pack ${h.pack} from its parity (${h.shards} of ${h.of} shards rebuilt) and wrote it back`),
    ...(result.parityWritten ? [`wrote the missing or damaged parity of ${count(result.parityWritten, 'pack')}`] : []),
    `checked ${count(result.packs, 'pack')}${read}, ${count(result.snapshots, 'snapshot')}, ${count(result.trees, 'tree')}: ` +
      `${result.problems.length ? count(result.problems.length, 'problem') : 'no problems'}${result.healed.length ? ` (${count(result.healed.length, 'pack')} healed)` : ''}`,
  ];
}

/** The service's rolling verification, as `strata status` shows it. */
export function verifyLines(v: VerifyStatus): string[] {
  const lines = [`  verification: part ${v.nextPart} of ${v.parts} next${v.running ? '; reading now' : ''}`];
  const p = v.lastPass;
  if (p) {
    lines.push(`    last pass ${p.time.slice(0, 19).replace('T', ' ')}: part ${p.part}, ${count(p.packsRead, 'pack')} (${formatBytes(p.bytesRead)}) read in ${Math.round(p.seconds)} s: ` +
      `${p.problems ? `${count(p.problems, 'PROBLEM')}` : 'no problems'}`);
    for (const d of p.damaged) lines.push(`      ${d.object}: ${d.message} (affects ${count(d.filesAffected, 'file or folder', 'files or folders')} in ${count(d.snapshots.length, 'snapshot')})`);
  }
  if (v.lastError) lines.push(`    last error (${v.lastError.time}): ${v.lastError.message}`);
  return lines;
}

export function repairLines(outcomes: RepairOutcome[], dryRun: boolean, forget: boolean): string[] {
  const lines: string[] = [];
  for (const o of outcomes) {
    const short = o.id.slice(0, 8);
    if (o.state === 'intact') continue;
    if (o.state === 'lost') lines.push(`snapshot ${short}: ${o.leftOut[0].message}`);
    else {
      lines.push(`snapshot ${short}: ${count(o.leftOut.length, 'file or folder', 'files and folders')} ${dryRun ? 'would be left out' : 'left out'}` +
        (o.repaired ? `; repaired as ${o.repaired.slice(0, 8)}${forget ? ', the original forgotten' : ''}` : ''));
      for (const l of o.leftOut.slice(0, NAMED_IN_TEXT)) lines.push(`  ${l.path}: ${l.message}`);
      if (o.leftOut.length > NAMED_IN_TEXT) lines.push(`  and ${o.leftOut.length - NAMED_IN_TEXT} more (--json lists them)`);
    }
  }
  const intact = outcomes.filter((o) => o.state === 'intact').length;
  lines.push(`${count(outcomes.length, 'snapshot')} looked at: ${intact} intact`);
  return lines;
}
