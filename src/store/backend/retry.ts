/**
 * A Backend → Backend wrapper that tries again, with growing pauses, when the storage
 * fails in a way that passes: a connection reset or refused, a timeout, a server's
 * 5xx or "slow down", a stale NFS handle or an I/O error on a network mount. Every
 * operation of a Backend may be repeated (a save replaces the object whole, a remove
 * of a missing object is fine); a listing cut off goes on without repeating a name.
 * Anything else (missing, damaged, denied, a full disk) fails at once.
 */
import { errors, isStrataError } from '../errors.js';
import { wrapBackend, type Backend, type ObjectInfo } from './backend.js';

export interface RetryOptions {
  /** Tries in all, the first included. */
  attempts?: number;
  /** The pause before the second try; it doubles for each one after. */
  firstPauseMs?: number;
}

const PASSING_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN',
  'ESTALE', 'EIO', 'EAGAIN', 'EBUSY',
]);
const PASSING_NAMES = new Set(['TimeoutError', 'RequestTimeout', 'RequestTimeoutException', 'SlowDown', 'ServiceUnavailable', 'InternalError', 'ThrottlingException']);

/** Whether a BACKEND error is of the kind that passes (its cause is the storage's own error). */
export function isPassing(e: unknown): boolean {
  if (!isStrataError(e, 'BACKEND')) return false;
  const cause = e.cause as { code?: string; name?: string; $metadata?: { httpStatusCode?: number } } | undefined;
  if (!cause) return false;
  const status = cause.$metadata?.httpStatusCode;
  return PASSING_CODES.has(cause.code ?? '') || PASSING_NAMES.has(cause.name ?? '') || (status !== undefined && (status >= 500 || status === 429));
}

export function retrying(backend: Backend, opts: RetryOptions = {}): Backend {
  const attempts = opts.attempts ?? 4;
  const firstPauseMs = opts.firstPauseMs ?? 250;
  const pause = (attempt: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, firstPauseMs * 2 ** (attempt - 1)));
  const giveUp = (e: unknown): unknown =>
    isStrataError(e) ? errors.backend(`${e.message} (after ${attempts} tries)`, { cause: e.cause }) : e;
  async function again<T>(operation: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await operation();
      } catch (e) {
        if (!isPassing(e)) throw e;
        if (attempt === attempts) throw giveUp(e);
        await pause(attempt);
      }
    }
  }
  return wrapBackend(backend, {
    save: (name, data) => again(() => backend.save(name, data)),
    load: (name, range) => again(() => backend.load(name, range)),
    stat: (name) => again(() => backend.stat(name)),
    remove: (name) => again(() => backend.remove(name)),
    async *list(prefix): AsyncIterable<ObjectInfo> {
      const yielded = new Set<string>();
      for (let attempt = 1; ; attempt++) {
        try {
          for await (const info of backend.list(prefix)) {
            if (yielded.has(info.name)) continue;
            yielded.add(info.name);
            yield info;
          }
          return;
        } catch (e) {
          if (!isPassing(e)) throw e;
          if (attempt === attempts) throw giveUp(e);
          await pause(attempt);
        }
      }
    },
  });
}
