/**
 * The service's rolling verification: on its schedule, `check --read-data-subset
 * n/parts` with n moving on each pass, so that every byte of the repository is read
 * and authenticated once every `parts` passes while each pass stays short. It runs
 * beside the captures under a shared lock (a prune scheduled meanwhile waits for it).
 * Damage is an error in the log and the status, naming each object and what it
 * affects; the pass goes on to the next part at the next interval either way.
 */
import type { Repository } from '../store/repository.js';
import { check, type CheckProblem } from './check.js';
import { failureOf, type Chore } from './chore.js';
import type { ServiceConfig } from './service-config.js';
import type { Log } from './service.js';

export interface VerifyStatus {
  parts: number;
  running?: boolean;
  /** The part the next pass reads (1-based). */
  nextPart: number;
  lastPass?: {
    time: string;
    seconds: number;
    part: number;
    packsRead: number;
    bytesRead: number;
    /** Problems found, the first PROBLEMS_SHOWN of them named. */
    problems: number;
    damaged: Pick<CheckProblem, 'object' | 'message' | 'filesAffected' | 'snapshots'>[];
  };
  /**
   * The last failure or damage found: a clean pass clears a failure, and damage once the
   * part that held it reads clean (the other parts say nothing about it).
   */
  lastError?: { time: string; message: string; part?: number };
}

const PROBLEMS_SHOWN = 10;

type Verify = NonNullable<ServiceConfig['verify']>;

export class Verification implements Chore {
  private readonly state: VerifyStatus;
  private lastPassAt: number;

  constructor(
    private readonly repo: Repository,
    private readonly config: Verify,
    private readonly log: Log,
    private readonly now: () => number,
    earlier?: VerifyStatus,
  ) {
    const nextPart = earlier && earlier.parts === config.parts ? earlier.nextPart : 1;
    this.state = { parts: config.parts, nextPart, ...(earlier ? { lastPass: earlier.lastPass, lastError: earlier.lastError } : {}) };
    this.lastPassAt = earlier?.lastPass ? Date.parse(earlier.lastPass.time) : -Infinity;
  }

  status(): VerifyStatus {
    return structuredClone(this.state);
  }

  due(): boolean {
    return this.now() - this.lastPassAt >= this.config.everyHours * 3_600_000;
  }

  /** One pass over the next part. Failures and damage are reported, never thrown. */
  async run(signal: AbortSignal, changed: () => Promise<void>): Promise<void> {
    this.lastPassAt = this.now();
    const part = this.state.nextPart;
    // Moves on even if this pass fails (a read error, a lock in the way): one bad part must not stop the others being read.
    this.state.nextPart = (part % this.config.parts) + 1;
    let lock;
    try {
      this.state.running = true;
      await changed();
      lock = await this.repo.lock('verify');
      const result = await check(this.repo, { readData: true, subset: { part, of: this.config.parts }, signal });
      this.state.lastPass = {
        time: new Date(this.lastPassAt).toISOString(), seconds: (this.now() - this.lastPassAt) / 1000, part,
        packsRead: result.packsRead, bytesRead: result.bytesRead, problems: result.problems.length,
        damaged: result.problems.slice(0, PROBLEMS_SHOWN).map(({ object, message, filesAffected, snapshots }) => ({ object, message, filesAffected, snapshots })),
      };
      for (const p of result.problems) {
        this.log.error({ object: p.object, snapshots: p.snapshots.map((id) => id.slice(0, 8)), files: p.files.slice(0, 20), filesAffected: p.filesAffected },
          `verification found damage: ${p.object}: ${p.message}`);
      }
      const found = result.problems.length;
      if (found) {
        this.state.lastError = {
          time: this.state.lastPass.time, part, message: `${found} problem${found === 1 ? '' : 's'} in part ${part} of ${this.config.parts} (run \`strata check --read-data\`)`,
        };
      } else if (this.state.lastError && (this.state.lastError.part ?? part) === part) {
        this.state.lastError = undefined;
      }
      this.log.info({ part, of: this.config.parts, packsRead: result.packsRead, bytesRead: result.bytesRead, problems: result.problems.length }, 'verification pass done');
    } catch (e) {
      this.state.lastError = failureOf(e, 'verification', signal, this.log, this.now()) ?? this.state.lastError;
    } finally {
      this.state.running = undefined;
      await lock?.release().catch(() => {});
    }
  }
}
