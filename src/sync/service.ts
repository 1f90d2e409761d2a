/**
 * The continuous capture service behind `strata serve`: for each source a
 * change journal, and a loop that takes a snapshot once changes settle (at
 * most one per minimum interval), reading only the folders that changed. A
 * full walk runs at start, after a watcher overflow or error, after a failed
 * capture, and on the periodic schedule. A source that cannot be watched (a
 * network mount) is walked fully every few minutes instead. Retention and prune
 * (src/sync/upkeep.ts), rolling verification (src/sync/verify.ts) and replication
 * to second copies (src/sync/replication.ts) run beside the captures. Status is written to a JSON file for `strata status`.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isStrataError } from '../store/errors.js';
import { defaultCacheDir, type Repository } from '../store/repository.js';
import { backup } from './backup.js';
import type { Chore } from './chore.js';
import { ChangeJournal, unchangedFolders, type Changes } from './journal.js';
import type { ServiceConfig } from './service-config.js';
import { Upkeep, type RetentionStatus } from './upkeep.js';
import { Replication, type ReplicaStatus } from './replication.js';
import { Verification, type VerifyStatus } from './verify.js';

export interface Log {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface SourceStatus {
  path: string;
  watching: boolean;
  capturing: boolean;
  /** Changed folders waiting for a snapshot; "full walk" when the next capture walks everything. */
  pending: number | 'full walk';
  lastSnapshot?: { id: string; time: string };
  /** The latest capture: wall and CPU seconds (the whole process's CPU while it ran). */
  lastCapture?: { time: string; seconds: number; cpuSeconds: number; filesRead: number; changed: boolean };
  lastError?: { time: string; message: string };
}

export interface ServiceStatus {
  pid: number;
  host: string;
  repository: string;
  started: string;
  updated: string;
  sources: SourceStatus[];
  /** Absent when the config turns retention off. */
  retention?: RetentionStatus;
  verify?: VerifyStatus;
  replicas?: ReplicaStatus[];
}

/** A source that cannot be watched is walked this often. */
const POLL_MS = 5 * 60 * 1000;
/** How often the loop looks for due work, and retries sources that failed to start. */
const TICK_MS = 200;
const RETRY_WATCH_MS = 30 * 1000;

interface SourceState {
  path: string;
  tags: string[];
  excludes: string[];
  journal?: ChangeJournal;
  watchFailedAt?: number;
  lastEventAt: number;
  lastCaptureAt: number;
  lastFullWalkAt: number;
  status: SourceStatus;
}

export class CaptureService {
  private readonly sources: SourceState[];
  private readonly abort = new AbortController();
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private readonly upkeep?: Upkeep;
  private readonly verification?: Verification;
  private readonly replications: Replication[];
  /** Retention, verification and replication, run one after the other on their own schedules. */
  private readonly chores: Chore[] = [];
  /** A chore in progress: a promise apart from `running`, so that captures go on beside it. */
  private upkeeping?: Promise<void>;
  private readonly started = new Date().toISOString();
  private statusWrites: Promise<void> = Promise.resolve();

  private constructor(
    private readonly repo: Repository,
    private readonly config: ServiceConfig,
    private readonly log: Log,
    private readonly statusFile: string,
    private readonly now: () => number,
    earlier?: ServiceStatus,
  ) {
    this.sources = config.sources.map((s) => ({
      path: path.resolve(s.path), tags: s.tags, excludes: s.excludes,
      lastEventAt: 0, lastCaptureAt: -Infinity, lastFullWalkAt: -Infinity,
      status: { path: path.resolve(s.path), watching: false, capturing: false, pending: 'full walk' },
    }));
    if (config.retention) this.upkeep = new Upkeep(repo, config.retention, this.sources.map((s) => s.path), log, now, earlier?.retention);
    if (config.verify) this.verification = new Verification(repo, config.verify, log, now, earlier?.verify);
    const cacheRoot = config.cacheDir ?? defaultCacheDir();
    this.replications = config.replicas.map((r) => new Replication(repo, r, cacheRoot, log, now, earlier?.replicas?.find((e) => e.to === r.to)));
    for (const chore of [this.upkeep, this.verification, ...this.replications]) if (chore) this.chores.push(chore);
  }

  static async start(repo: Repository, config: ServiceConfig, log: Log, statusFile: string, now = Date.now): Promise<CaptureService> {
    const service = new CaptureService(repo, config, log, statusFile, now, await readStatus(statusFile));
    for (const source of service.sources) await service.watch(source);
    await service.writeStatus();
    service.timer = setInterval(() => service.tick(), TICK_MS);
    return service;
  }

  status(): ServiceStatus {
    for (const s of this.sources) s.status.pending = s.journal ? (Number.isFinite(s.journal.pending) ? s.journal.pending : 'full walk') : 'full walk';
    return {
      pid: process.pid, host: os.hostname(), repository: this.repo.backend.location, started: this.started,
      updated: new Date(this.now()).toISOString(), sources: this.sources.map((s) => ({ ...s.status })),
      ...(this.upkeep ? { retention: this.upkeep.status() } : {}),
      ...(this.verification ? { verify: this.verification.status() } : {}),
      ...(this.replications.length ? { replicas: this.replications.map((r) => r.status()) } : {}),
    };
  }

  /** Stops watching; a capture in progress is abandoned cleanly (what it stored stays usable). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.abort.abort();
    await Promise.all([this.running?.catch(() => {}), this.upkeeping]);
    for (const s of this.sources) await s.journal?.close();
    await this.writeStatus();
  }

  /** Waits until the capture and the chore in progress, if any, are done and the status written (for tests). */
  async idle(): Promise<void> {
    await Promise.all([this.running, this.upkeeping]);
    await this.statusWrites; // a chore's last write may still be on its way
  }

  private async watch(source: SourceState): Promise<void> {
    try {
      source.journal = await ChangeJournal.start(source.path, () => { source.lastEventAt = this.now(); });
      source.status.watching = true;
      source.watchFailedAt = undefined;
      this.log.info({ source: source.path }, 'watching for changes');
    } catch (e) {
      source.watchFailedAt = this.now();
      source.status.watching = false;
      this.fail(source, `cannot watch: ${(e as Error).message}; walking it every ${POLL_MS / 60000} minutes instead`);
    }
  }

  private fail(source: SourceState, message: string): void {
    source.status.lastError = { time: new Date(this.now()).toISOString(), message };
    this.log.warn({ source: source.path }, message);
  }

  private due(s: SourceState): boolean {
    const now = this.now();
    if (now - s.lastCaptureAt < this.config.minIntervalSeconds * 1000) return false;
    if (now - s.lastFullWalkAt >= this.config.fullWalkHours * 3600 * 1000) return true;
    if (!s.journal) return now - s.lastCaptureAt >= POLL_MS;
    return s.journal.pending > 0 && now - s.lastEventAt >= this.config.settleSeconds * 1000;
  }

  private tick(): void {
    if (this.abort.signal.aborted) return;
    // Chores wait for every source's first capture (at start, the full walks come first), then keep their own schedules.
    const due = this.chores.findIndex((c) => c.due());
    if (due >= 0 && !this.upkeeping && this.sources.every((s) => s.lastCaptureAt > -Infinity)) {
      const [chore] = this.chores.splice(due, 1);
      this.chores.push(chore); // the others come first next time: a chore due often does not starve one due rarely
      this.upkeeping = chore.run(this.abort.signal, () => this.writeStatus()).finally(() => {
        this.upkeeping = undefined;
        return this.writeStatus();
      });
    }
    if (this.running) return;
    for (const s of this.sources) {
      if (!s.journal && s.watchFailedAt !== undefined && this.now() - s.watchFailedAt > RETRY_WATCH_MS) void this.watch(s);
    }
    const source = this.sources.find((s) => this.due(s));
    if (!source) return;
    this.running = this.captureSource(source).finally(() => { this.running = undefined; });
  }

  private async captureSource(s: SourceState): Promise<void> {
    const started = this.now();
    const cpu = process.cpuUsage();
    const fullDue = started - s.lastFullWalkAt >= this.config.fullWalkHours * 3600 * 1000;
    const changes: Changes = s.journal?.take() ?? { full: true, dirty: new Set() };
    const host = os.hostname();
    s.status.capturing = true;
    s.lastCaptureAt = started;
    try {
      let full = true;
      const { snapshot: ref, parent } = await backup(this.repo, {
        purpose: 'strata serve', paths: [s.path], host, tags: s.tags, excludes: s.excludes, onlyIfChanged: !this.config.snapshotWhenUnchanged,
        // The journal says what changed since the last capture, which made the parent; a full walk compares everything.
        unchangedSince: () => ((full = changes.full || fullDue) ? undefined : unchangedFolders(changes)),
        signal: this.abort.signal,
        onError: (p, m) => this.log.warn({ source: s.path, path: p }, m),
        onWarning: (m) => this.log.warn({ source: s.path }, m),
      });
      if (full) s.lastFullWalkAt = started;
      const changed = ref.id !== parent?.id;
      const summary = ref.snapshot.summary;
      s.status.lastSnapshot = { id: ref.id, time: ref.snapshot.time };
      const used = process.cpuUsage(cpu);
      s.status.lastCapture = {
        time: new Date(started).toISOString(), seconds: (this.now() - started) / 1000, cpuSeconds: (used.user + used.system) / 1e6,
        filesRead: changed ? summary.filesRead : 0, changed,
      };
      if (changed) {
        this.log.info({ source: s.path, snapshot: ref.id.slice(0, 8), full, filesRead: summary.filesRead, seconds: summary.seconds }, 'snapshot saved');
        if (summary.errors.length) this.fail(s, `${summary.errors.length} files could not be read (first: ${summary.errors[0].path}: ${summary.errors[0].message})`);
      }
    } catch (e) {
      // Nothing is lost: the changes wait for the next capture, which walks everything to be sure.
      s.journal?.giveBack({ ...changes, full: true });
      if (isStrataError(e, 'INTERRUPTED')) this.log.info({ source: s.path }, 'capture abandoned: stopping');
      else this.fail(s, (e as Error).message);
    } finally {
      s.status.capturing = false;
      await this.writeStatus();
    }
  }

  /**
   * Writes one at a time (captures and chores write when they like), each taking the
   * status as it is when it starts: the file always ends with the newest.
   */
  private writeStatus(): Promise<void> {
    this.statusWrites = this.statusWrites.then(() => this.writeStatusNow());
    return this.statusWrites;
  }

  private async writeStatusNow(): Promise<void> {
    const tmp = `${this.statusFile}.${process.pid}.tmp`;
    try {
      await fs.mkdir(path.dirname(this.statusFile), { recursive: true });
      await fs.writeFile(tmp, `${JSON.stringify(this.status(), null, 2)}\n`);
      await fs.rename(tmp, this.statusFile);
    } catch (e) {
      this.log.warn({ file: this.statusFile }, `cannot write the status file: ${(e as Error).message}`);
    }
  }
}

export async function readStatus(file: string): Promise<ServiceStatus | undefined> {
  try {
    return JSON.parse(await fs.readFile(file, 'utf8')) as ServiceStatus;
  } catch {
    return undefined;
  }
}
