/**
 * The service's retention: on its schedule, applies the config's policy to the
 * snapshots of each source (this host, that path), then now and then prunes.
 * It runs beside the captures, never in their way: forgetting takes a shared
 * lock for a moment, and prune is two-phase (src/store/prune.ts), so a capture
 * due while a prune marks, copies or waits out its grace period goes ahead and
 * the recovery-point objective holds. Each pass is logged and kept in the
 * status (what was forgotten, how many each rule kept); a failure is an error
 * in both, and the pass is tried again at the next interval.
 */
import os from 'node:os';
import { prune, type PruneResult } from '../store/prune.js';
import type { Repository } from '../store/repository.js';
import { failureOf, type Chore } from './chore.js';
import { forget, forgottenIn } from './forget.js';
import type { RetentionPolicy } from './retention.js';
import type { ServiceConfig } from './service-config.js';
import type { Log } from './service.js';

export interface RetentionStatus {
  policy: RetentionPolicy;
  /** What runs now. */
  running?: 'forget' | 'prune';
  lastForget?: {
    time: string;
    /** Per source: the snapshots forgotten (newest first, at most FORGOTTEN_SHOWN of them) and how many each rule kept. */
    sources: { path: string; kept: number; keptBy: Record<string, number>; forgotten: number; forgottenIds: string[] }[];
  };
  lastPrune?: { time: string; seconds: number } & Pick<PruneResult, 'deletedPacks' | 'freedBytes' | 'scheduledPacks' | 'copiedBytes' | 'unusedBytes'> & { pending: number };
  lastError?: { time: string; message: string };
}

/** The status names this many forgotten snapshots per source; the log names them all. */
const FORGOTTEN_SHOWN = 20;

type Retention = NonNullable<ServiceConfig['retention']>;

export class Upkeep implements Chore {
  private readonly state: RetentionStatus;
  private lastForgetAt: number;
  private lastPruneAt: number;

  constructor(
    private readonly repo: Repository,
    private readonly config: Retention,
    private readonly sources: string[],
    private readonly log: Log,
    private readonly now: () => number,
    /** What the status file of an earlier run said: its times carry over a restart. */
    earlier?: RetentionStatus,
  ) {
    this.state = { policy: config.keep, ...(earlier ? { lastForget: earlier.lastForget, lastPrune: earlier.lastPrune, lastError: earlier.lastError } : {}) };
    this.lastForgetAt = earlier?.lastForget ? Date.parse(earlier.lastForget.time) : -Infinity;
    this.lastPruneAt = earlier?.lastPrune ? Date.parse(earlier.lastPrune.time) : -Infinity;
  }

  status(): RetentionStatus {
    return structuredClone(this.state);
  }

  due(): boolean {
    return this.now() - this.lastForgetAt >= this.config.everyMinutes * 60_000;
  }

  /**
   * One pass: forget by the policy, and prune when its interval has passed. Failures are
   * reported, never thrown. `changed` is told when the status has something new to show.
   */
  async run(signal: AbortSignal, changed: () => Promise<void>): Promise<void> {
    this.lastForgetAt = this.now();
    try {
      this.state.running = 'forget';
      await changed();
      await this.forget();
      if (this.config.prune && this.now() - this.lastPruneAt >= this.config.prune.everyHours * 3_600_000 && !signal.aborted) {
        this.lastPruneAt = this.now();
        this.state.running = 'prune';
        await changed();
        await this.prune(this.config.prune, signal);
      }
    } catch (e) {
      // A prune stopped midway leaves its schedule: a later prune finishes it.
      this.state.lastError = failureOf(e, 'retention', signal, this.log, this.now()) ?? this.state.lastError;
    } finally {
      this.state.running = undefined;
    }
  }

  private async forget(): Promise<void> {
    const host = os.hostname();
    const sources: NonNullable<RetentionStatus['lastForget']>['sources'] = [];
    for (const source of this.sources) {
      const groups = await forget(this.repo, {
        policy: this.config.keep, filter: { host, paths: [source] }, onWarning: (m) => this.log.warn({}, m),
      });
      const keptBy: Record<string, number> = {};
      let kept = 0;
      for (const d of groups.flatMap((g) => g.decisions)) {
        if (!d.keep) continue;
        kept++;
        for (const reason of d.reasons) keptBy[reason] = (keptBy[reason] ?? 0) + 1;
      }
      const forgotten = forgottenIn(groups);
      sources.push({ path: source, kept, keptBy, forgotten: forgotten.length, forgottenIds: forgotten.slice(0, FORGOTTEN_SHOWN) });
      if (forgotten.length) {
        this.log.info({ source, forgotten: forgotten.map((id) => id.slice(0, 8)), kept, keptBy }, `retention forgot ${forgotten.length} snapshots no rule keeps`);
      }
    }
    this.state.lastForget = { time: new Date(this.now()).toISOString(), sources };
  }

  private async prune(options: NonNullable<Retention['prune']>, signal: AbortSignal): Promise<void> {
    const started = this.now();
    const result = await prune(this.repo, {
      maxUnused: options.maxUnusedPercent / 100, graceMs: options.graceSeconds * 1000, wait: true, signal,
      onWarning: (m) => this.log.warn({}, m),
    });
    const { deletedPacks, freedBytes, scheduledPacks, copiedBytes, unusedBytes } = result;
    this.state.lastPrune = {
      time: new Date(started).toISOString(), seconds: (this.now() - started) / 1000,
      deletedPacks, freedBytes, scheduledPacks, copiedBytes, unusedBytes, pending: result.pending.length,
    };
    this.log.info({ deletedPacks, freedBytes, copiedBytes, seconds: this.state.lastPrune.seconds }, 'prune done');
  }
}
