/**
 * Work `strata serve` does now and then beside its captures (retention,
 * verification): each keeps its own schedule and reports its own failures.
 */
import { isStrataError } from '../store/errors.js';
import type { Log } from './service.js';

export interface Chore {
  due(): boolean;
  /** Reports its failures itself (log and status), never throws; `changed` writes the status. */
  run(signal: AbortSignal, changed: () => Promise<void>): Promise<void>;
}

/**
 * What a chore's failure becomes: a stop (the service shutting down) is logged as news and
 * leaves no error; anything else is logged as an error and returned for the status.
 */
export function failureOf(e: unknown, what: string, signal: AbortSignal, log: Log, now: number): { time: string; message: string } | undefined {
  if (isStrataError(e, 'INTERRUPTED') || signal.aborted) {
    log.info({}, `${what} abandoned: stopping`);
    return undefined;
  }
  const message = `${what} failed: ${(e as Error).message}`;
  log.error({}, message);
  return { time: new Date(now).toISOString(), message };
}
