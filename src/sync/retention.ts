/**
 * Retention: which snapshots a policy keeps, and by which rule, as restic decides it.
 * Snapshots are grouped (by host and paths unless told otherwise); within each
 * group, newest first, a rule such as "daily 7" keeps the newest snapshot of each
 * of the 7 most recent days that have one. `within` keeps everything newer than a
 * duration before the group's newest snapshot; `tags` keeps every snapshot
 * carrying one of them. A snapshot no rule keeps is forgotten.
 *
 * Calendar buckets use the machine's local time, as an admin reads the clock.
 */
import { errors } from '../store/errors.js';
import type { SnapshotRef } from '../store/roles.js';

export interface RetentionPolicy {
  last?: number;
  hourly?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
  yearly?: number;
  /** A duration such as "1d", "2w3d" or "1y6m" (y, m = months, w, d, h). */
  within?: string;
  tags?: string[];
}

export type GroupKey = 'host' | 'paths' | 'tags';

export interface RetentionDecision {
  ref: SnapshotRef;
  keep: boolean;
  /** The rules that keep it ("daily", "within 1d", "tag keep", …); empty when forgotten. */
  reasons: string[];
}

export interface RetentionGroup {
  host?: string;
  paths?: string[];
  tags?: string[];
  /** Newest first. */
  decisions: RetentionDecision[];
}

/** Unlimited count for a rule (restic's "unlimited", here also -1). */
export const UNLIMITED = Number.POSITIVE_INFINITY;

/**
 * Continuous capture makes a snapshot every few seconds. The service keeps them like
 * Time Machine does: every version for a day, then hourly for a week, daily for a
 * month, weekly for a year, monthly for ten years.
 */
export const DEFAULT_SERVICE_POLICY: RetentionPolicy = { within: '1d', hourly: 7 * 24, daily: 31, weekly: 52, monthly: 120 };

const BUCKET_RULES = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;
type BucketRule = (typeof BUCKET_RULES)[number];

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/** The calendar bucket a time falls in for a rule; `last` puts every snapshot in its own. */
function bucketOf(rule: BucketRule, time: Date, id: string): string {
  const y = time.getFullYear();
  const m = pad(time.getMonth() + 1);
  const d = pad(time.getDate());
  switch (rule) {
    case 'last': return id;
    case 'hourly': return `${y}-${m}-${d} ${pad(time.getHours())}`;
    case 'daily': return `${y}-${m}-${d}`;
    case 'weekly': return isoWeek(time);
    case 'monthly': return `${y}-${m}`;
    case 'yearly': return `${y}`;
  }
}

/** ISO 8601 week ("2026-W49"): weeks start on Monday; week 1 holds the year's first Thursday. */
function isoWeek(time: Date): string {
  const day = new Date(time.getFullYear(), time.getMonth(), time.getDate());
  const weekday = (day.getDay() + 6) % 7; // Monday 0
  day.setDate(day.getDate() - weekday + 3); // the Thursday of this week decides the year
  const firstThursday = new Date(day.getFullYear(), 0, 4);
  const week = 1 + Math.round(((day.getTime() - firstThursday.getTime()) / 86_400_000 - 3 + ((firstThursday.getDay() + 6) % 7)) / 7);
  return `${day.getFullYear()}-W${pad(week)}`;
}

/** Parses "1y6m", "2w", "36h"; throws a usage error for anything else. */
export function parseDuration(text: string): { years: number; months: number; days: number; hours: number } {
  const parts = [...text.matchAll(/(\d+)([ymwdh])/g)];
  if (!parts.length || parts.map((p) => p[0]).join('') !== text) {
    throw errors.usage(`"${text}" is not a duration: use numbers with y (years), m (months), w, d, h, such as 7d or 1y6m`);
  }
  const total = { years: 0, months: 0, days: 0, hours: 0 };
  for (const [, n, unit] of parts) {
    const v = Number(n);
    if (unit === 'y') total.years += v;
    else if (unit === 'm') total.months += v;
    else if (unit === 'w') total.days += 7 * v;
    else if (unit === 'd') total.days += v;
    else total.hours += v;
  }
  return total;
}

function before(time: Date, text: string): Date {
  const d = parseDuration(text);
  const t = new Date(time);
  t.setFullYear(t.getFullYear() - d.years, t.getMonth() - d.months, t.getDate() - d.days);
  t.setHours(t.getHours() - d.hours);
  return t;
}

export function isEmptyPolicy(p: RetentionPolicy): boolean {
  return BUCKET_RULES.every((r) => !p[r]) && !p.within && !p.tags?.length;
}

/** Checks counts and durations before anything is forgotten. */
export function validatePolicy(p: RetentionPolicy): void {
  for (const rule of BUCKET_RULES) {
    const n = p[rule];
    if (n !== undefined && !(n === UNLIMITED || (Number.isInteger(n) && n >= 0))) throw errors.usage(`keep-${rule} must be a whole number or "unlimited", not ${n}`);
  }
  if (p.within) parseDuration(p.within);
}

function groupKey(ref: SnapshotRef, by: readonly GroupKey[]): Omit<RetentionGroup, 'decisions'> {
  const s = ref.snapshot;
  return {
    ...(by.includes('host') ? { host: s.host } : {}),
    ...(by.includes('paths') ? { paths: [...s.paths].sort() } : {}),
    ...(by.includes('tags') ? { tags: [...s.tags].sort() } : {}),
  };
}

/** Decides for every snapshot (given oldest first, as listed) whether `policy` keeps it. */
export function applyPolicy(snapshots: readonly SnapshotRef[], policy: RetentionPolicy, groupBy: readonly GroupKey[] = ['host', 'paths']): RetentionGroup[] {
  validatePolicy(policy);
  const groups = new Map<string, RetentionGroup>();
  for (const ref of [...snapshots].sort((a, b) => b.snapshot.time.localeCompare(a.snapshot.time) || b.id.localeCompare(a.id))) {
    const key = groupKey(ref, groupBy);
    const name = JSON.stringify(key);
    let group = groups.get(name);
    if (!group) groups.set(name, (group = { ...key, decisions: [] }));
    group.decisions.push({ ref, keep: false, reasons: [] });
  }
  for (const group of groups.values()) decide(group.decisions, policy);
  return [...groups.values()];
}

function decide(newestFirst: RetentionDecision[], policy: RetentionPolicy): void {
  if (!newestFirst.length) return;
  const left = new Map<BucketRule, number>(BUCKET_RULES.filter((r) => policy[r]).map((r) => [r, policy[r]!]));
  const lastBucket = new Map<BucketRule, string>();
  const cutoff = policy.within ? before(new Date(newestFirst[0].ref.snapshot.time), policy.within) : undefined;
  for (const d of newestFirst) {
    const { time: iso, tags } = d.ref.snapshot;
    const time = new Date(iso);
    for (const [rule, n] of left) {
      if (n <= 0) continue;
      const bucket = bucketOf(rule, time, d.ref.id);
      if (bucket === lastBucket.get(rule)) continue;
      lastBucket.set(rule, bucket);
      left.set(rule, n - 1);
      d.reasons.push(rule === 'last' ? 'last' : rule);
    }
    if (cutoff && time > cutoff) d.reasons.push(`within ${policy.within}`);
    for (const tag of policy.tags ?? []) if (tags.includes(tag)) d.reasons.push(`tag ${tag}`);
    d.keep = d.reasons.length > 0;
  }
}
