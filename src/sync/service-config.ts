/**
 * The `strata serve` config file (JSON): what to capture, where to, and how
 * often. Unknown keys and wrong types are errors that name the key.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { errors } from '../store/errors.js';
import { DEFAULT_SERVICE_POLICY, parseDuration, UNLIMITED } from './retention.js';

const source = z.object({
  /** The folder to capture continuously. */
  path: z.string().min(1),
  tags: z.array(z.string()).default([]),
  excludes: z.array(z.string()).default([]),
}).strict();

const keepCount = z.union([z.number().int().min(0), z.literal('unlimited').transform(() => UNLIMITED)]);

/** What the service keeps: restic's rules, as `strata forget --keep-*` takes them. */
const keep = z.object({
  last: keepCount.optional(),
  hourly: keepCount.optional(),
  daily: keepCount.optional(),
  weekly: keepCount.optional(),
  monthly: keepCount.optional(),
  yearly: keepCount.optional(),
  within: z.string().refine((d) => { try { parseDuration(d); return true; } catch { return false; } }, 'a duration such as 1d, 2w or 1y6m').optional(),
  tags: z.array(z.string()).optional(),
}).strict().refine((k) => Object.values(k).some((v) => v !== undefined), 'keeps nothing: name at least one rule (or set "retention" to null)');

const prune = z.object({
  /** A prune at most this often, after a retention pass. */
  everyHours: z.number().positive().default(24),
  /** Percent of a pack's bytes that may be unused before it is repacked. */
  maxUnusedPercent: z.number().min(0).max(100).default(5),
  /** How long condemned packs stand before they are deleted (readers without a lock learn of it meanwhile). */
  graceSeconds: z.number().min(0).default(60),
}).strict();

const retention = z.object({
  keep: keep.default(DEFAULT_SERVICE_POLICY),
  /** How often the policy is applied to the service's own snapshots (this host, each source's path). */
  everyMinutes: z.number().positive().default(60),
  /** null: never prune (space is then freed only by `strata prune`). */
  prune: prune.nullable().prefault({}),
}).strict();

const verify = z.object({
  /** A verification pass at most this often. */
  everyHours: z.number().positive().default(24),
  /** Each pass reads one part of the packs whole (by pack id): every byte is read once every `parts` passes. */
  parts: z.number().int().min(1).default(7),
}).strict();

const replica = z.object({
  /** The copy: a folder on another disk or NAS, or S3 (`s3:http://host:port/bucket/prefix`). */
  to: z.string().min(1),
  /** A replication run at most this often. */
  everyMinutes: z.number().positive().default(60),
  /** At most this many KiB per second to the copy. */
  limitUploadKiB: z.number().positive().optional(),
  /** A run stops taking packs after this long and goes on at its next turn, so that other chores are not held up. */
  maxRunMinutes: z.number().positive().default(30),
  /** Also remove from the copy what the source forgot and pruned; by default the copy keeps everything it was sent. */
  mirrorDeletions: z.boolean().default(false),
  /** Never remove or replace anything on the copy (Object Lock implies it). */
  appendOnly: z.boolean().default(false),
  /** S3 Object Lock on every object of the copy, for this many days (a new bucket is made with Object Lock). */
  objectLock: z.object({ mode: z.enum(['GOVERNANCE', 'COMPLIANCE']), days: z.number().int().min(1).max(36500) }).strict().optional(),
}).strict()
  .refine((r) => !(r.mirrorDeletions && (r.appendOnly || r.objectLock)), 'mirrorDeletions removes from the copy, which appendOnly and objectLock forbid')
  .refine((r) => !r.objectLock || r.to.startsWith('s3:'), 'objectLock is for copies on S3 (s3:…); a folder takes appendOnly');

const schema = z.object({
  /** The repository: a local folder, or S3 (`s3:http://host:port/bucket/prefix`). */
  repository: z.string().min(1),
  /** File holding the password (STRATA_PASSWORD, when set, comes first; STRATA_PASSWORD_FILE when this is absent). */
  passwordFile: z.string().optional(),
  /** Where the index cache and the status file live (default: $STRATA_CACHE_DIR or ~/.cache/strata). */
  cacheDir: z.string().optional(),
  sources: z.array(source).min(1),
  /** Quiet time after the last change before a snapshot is taken. */
  settleSeconds: z.number().min(0).default(2),
  /** At most one snapshot per source in this many seconds. */
  minIntervalSeconds: z.number().min(0).default(10),
  /** A full walk at least this often, to catch what watching can miss. */
  fullWalkHours: z.number().positive().default(24),
  /** Save a snapshot even when a full walk finds nothing changed. */
  snapshotWhenUnchanged: z.boolean().default(false),
  /** Also mount every version here (read-only FUSE), for as long as the service runs. */
  mount: z.string().optional(),
  /** Thinning of old snapshots and freeing their space; null keeps every snapshot forever. */
  retention: retention.nullable().prefault({}),
  /** Rolling verification (`strata check --read-data-subset`); null never reads the data back. */
  verify: verify.nullable().prefault({}),
  /** Second copies, kept up to date by `strata replicate` on their schedules; none by default. */
  replicas: z.array(replica).default([]),
}).strict();

export type ServiceConfig = z.infer<typeof schema>;

/** Parses and checks a config object; USAGE errors name the offending key. */
export function parseConfig(value: unknown, where: string): ServiceConfig {
  const result = schema.safeParse(value);
  if (!result.success) {
    const problems = result.error.issues.map((i) => {
      const at = i.path.length ? i.path.join('.') : '(top level)';
      return i.code === 'unrecognized_keys' ? `unknown key ${i.keys.map((k) => `"${[...i.path, k].join('.')}"`).join(', ')}` : `${at}: ${i.message}`;
    });
    throw errors.usage(`${where}: ${problems.join('; ')}`);
  }
  return result.data;
}

export function readConfig(file: string): ServiceConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw errors.usage(`cannot read the config file ${file}: ${(e as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw errors.usage(`${file} is not valid JSON: ${(e as Error).message}`);
  }
  return parseConfig(value, file);
}

/** The embedded default: the README's demo share and a local repository beside it. */
export function defaultConfig(demoDir = process.env.STRATA_DEMO_DIR ?? '/tmp/strata-demo'): ServiceConfig {
  return parseConfig({
    repository: path.join(demoDir, 'repository'),
    cacheDir: path.join(demoDir, 'cache'),
    sources: [{ path: path.join(demoDir, 'share') }],
    mount: path.join(demoDir, 'mnt'),
  }, 'the default config');
}
