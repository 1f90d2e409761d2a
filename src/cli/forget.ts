/** What `forget`, `prune` and the retention part of `status` print, and how their options are read. */
import { InvalidArgumentError } from 'commander';
import type { PruneResult } from '../store/prune.js';
import { UNLIMITED, type RetentionGroup, type RetentionPolicy } from '../sync/retention.js';
import type { RetentionStatus } from '../sync/upkeep.js';
import { count, formatBytes } from './output.js';

/** A --keep-* count: a whole number, or "unlimited". */
export function parseCount(value: string): number {
  if (value === 'unlimited' || value === '-1') return UNLIMITED;
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('a whole number or "unlimited"');
  return Number(value);
}

/** "5%" → 0.05. */
export function parsePercent(value: string): number {
  const m = /^(\d+(?:\.\d+)?)%$/.exec(value);
  if (!m || Number(m[1]) > 100) throw new InvalidArgumentError(`--max-unused takes a percentage such as 5%, not "${value}"`);
  return Number(m[1]) / 100;
}

/** "90s", "2m", "1h", "0s" → milliseconds. */
export function parseGrace(value: string): number {
  const m = /^(\d+)(s|m|h)$/.exec(value);
  if (!m) throw new InvalidArgumentError(`--grace takes a duration such as 60s, 5m or 1h, not "${value}"`);
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 's' | 'm' | 'h'];
}

const when = (iso: string): string => iso.slice(0, 19).replace('T', ' ');

export function forgetLines(groups: RetentionGroup[], dryRun: boolean): string[] {
  const lines: string[] = [];
  for (const g of groups) {
    const label = [g.host && `host ${g.host}`, g.paths && `paths ${g.paths.join(' ')}`, g.tags && `tags ${g.tags.join(',') || '(none)'}`].filter(Boolean).join(', ');
    const keep = g.decisions.filter((d) => d.keep);
    const remove = g.decisions.filter((d) => !d.keep);
    if (label) lines.push(`snapshots of ${label}:`);
    if (keep.length) {
      lines.push(`keep ${count(keep.length, 'snapshot')}:`);
      for (const d of keep) lines.push(`  ${d.ref.id.slice(0, 8)}  ${when(d.ref.snapshot.time)}  ${d.reasons.join(', ')}`);
    }
    if (remove.length) {
      lines.push(`${dryRun ? 'would remove' : 'removed'} ${count(remove.length, 'snapshot')}:`);
      for (const d of remove) lines.push(`  ${d.ref.id.slice(0, 8)}  ${when(d.ref.snapshot.time)}`);
    }
  }
  if (!groups.length) lines.push('no snapshots to consider');
  return lines;
}

export function pruneLines(r: PruneResult): string[] {
  const lines = [
    `${r.snapshots} snapshots use ${formatBytes(r.bytes - r.unusedBytes)} of ${formatBytes(r.bytes)} in ${count(r.packs, 'pack')}; ` +
      `${count(r.unusedBlobs, 'unused blob')} hold ${formatBytes(r.unusedBytes)}`,
  ];
  if (r.dryRun) {
    lines.push(`would schedule ${count(r.scheduledPacks, 'pack')} for deletion, ${r.repackedPacks} of them after copying their used blobs out`);
    return lines;
  }
  if (r.scheduledPacks) lines.push(`scheduled ${count(r.scheduledPacks, 'pack')} for deletion; copied ${count(r.copiedBlobs, 'blob')} (${formatBytes(r.copiedBytes)}) out of ${count(r.repackedPacks, 'pack')} first`);
  if (r.rescuedBlobs) lines.push(`${count(r.rescuedBlobs, 'blob')} a newer snapshot uses were copied out before their packs went`);
  lines.push(`deleted ${count(r.deletedPacks, 'pack')}, freed ${formatBytes(r.freedBytes)}`);
  for (const p of r.pending) lines.push(`${count(p.packs, 'pack')} scheduled at ${when(p.since)} are deleted by a later prune (\`strata prune\`), once backups running then are done`);
  if (!r.scheduledPacks && !r.deletedPacks && !r.pending.length) lines.push('nothing to prune');
  return lines;
}

const policyText = (p: RetentionPolicy): string =>
  Object.entries(p).map(([rule, n]) => (rule === 'tags' ? `tags ${(n as string[]).join(',')}` : `${rule} ${n === null ? 'unlimited' : n}`)).join(', ');

/** The service's retention, as `strata status` shows it. */
export function retentionLines(r: RetentionStatus): string[] {
  const lines = [`  retention: keep ${policyText(r.policy)}${r.running ? `; ${r.running === 'prune' ? 'pruning' : 'forgetting'} now` : ''}`];
  if (r.lastForget) {
    const forgotten = r.lastForget.sources.reduce((n, s) => n + s.forgotten, 0);
    const keptBy: Record<string, number> = {};
    for (const s of r.lastForget.sources) for (const [rule, n] of Object.entries(s.keptBy)) keptBy[rule] = (keptBy[rule] ?? 0) + n;
    const kept = r.lastForget.sources.reduce((n, s) => n + s.kept, 0);
    const by = Object.entries(keptBy).map(([rule, n]) => `${rule} ${n}`).join(', ');
    lines.push(`    last pass ${when(r.lastForget.time)}: forgot ${count(forgotten, 'snapshot')}, kept ${kept}${by ? ` (${by})` : ''}`);
  }
  if (r.lastPrune) {
    const p = r.lastPrune;
    lines.push(`    last prune ${when(p.time)}: freed ${formatBytes(p.freedBytes)} (${count(p.deletedPacks, 'pack')}) in ${Math.round(p.seconds)} s` +
      (p.pending ? `; ${count(p.pending, 'schedule')} still standing` : ''));
  }
  if (r.lastError) lines.push(`    last error (${r.lastError.time}): ${r.lastError.message}`);
  return lines;
}
