/**
 * A fault-injecting Backend for crash and damage tests: it hands everything to a
 * real backend, except that chosen calls fail (the Nth save, every load after the
 * 10th, …), wait, return corrupted bytes, or report a save done that never
 * happened; a failing listing is cut off after its first object. Calls are counted per operation, so a test can say how many were made.
 */
import { wrapBackend, type Backend } from '../../src/store/backend/backend.js';
import { errors } from '../../src/store/errors.js';

export type Operation = 'save' | 'load' | 'stat' | 'list' | 'remove';

/** Makes the error a failing call throws, from what a backend's message names. */
export type ErrorOf = (op: Operation, name: string, location: string) => Error;

/** A storage error that passes (a connection reset), as a backend reports it. */
export const passingError: ErrorOf = (op, name, location) =>
  errors.backend(`${op} ${name} in ${location} failed: connection reset`, { cause: Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }) });

/** A storage error that stays (access denied). */
export const lastingError: ErrorOf = (op, name, location) =>
  errors.backend(`${location} denied access to ${name} (${op})`, { cause: Object.assign(new Error('Access Denied'), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } }) });

interface Rule {
  op: Operation;
  /** Calls of `op` on names that match, counted from 1, that the rule applies to. */
  from: number;
  to: number;
  names: RegExp;
  apply: 'fail' | 'delay' | 'corrupt' | 'lose';
  error?: ErrorOf;
  ms?: number;
  seen: number;
}

export interface FaultPlan {
  /** Calls matching `names` (default: every name) from the `after + 1`th, `times` of them (default 1). */
  after?: number;
  times?: number;
  names?: RegExp;
}

export class FaultyBackend {
  readonly calls: Record<Operation, number> = { save: 0, load: 0, stat: 0, list: 0, remove: 0 };
  readonly backend: Backend;
  private readonly rules: Rule[] = [];

  constructor(inner: Backend) {
    const hit = (op: Operation, name: string, apply: Rule['apply']): Rule | undefined => {
      let found: Rule | undefined;
      for (const rule of this.rules) {
        if (rule.op !== op || rule.apply !== apply || !rule.names.test(name)) continue;
        rule.seen++;
        if (rule.seen >= rule.from && rule.seen <= rule.to) found ??= rule;
      }
      return found;
    };
    /** Counts the call, waits where a rule says so, and returns the error it is to fail with. */
    const failureOf = async (op: Operation, name: string): Promise<Error | undefined> => {
      this.calls[op]++;
      const delay = hit(op, name, 'delay');
      if (delay) await new Promise((resolve) => setTimeout(resolve, delay.ms));
      return hit(op, name, 'fail')?.error!(op, name, inner.location);
    };
    const before = async (op: Operation, name: string): Promise<void> => {
      const error = await failureOf(op, name);
      if (error) throw error;
    };
    this.backend = wrapBackend(inner, {
      async save(name, data) {
        await before('save', name);
        if (!hit('save', name, 'lose')) await inner.save(name, data);
      },
      async load(name, range) {
        await before('load', name);
        const data = await inner.load(name, range);
        if (hit('load', name, 'corrupt') && data.length) data[data.length >> 1]! ^= 0x40;
        return data;
      },
      async stat(name) {
        await before('stat', name);
        return inner.stat(name);
      },
      /** A failing listing is cut off after its first object (when it has one). */
      async *list(prefix) {
        const error = await failureOf('list', prefix);
        for await (const info of inner.list(prefix)) {
          yield info;
          if (error) throw error;
        }
        if (error) throw error;
      },
      async remove(name) {
        await before('remove', name);
        await inner.remove(name);
      },
    });
  }

  private add(op: Operation, apply: Rule['apply'], plan: FaultPlan, more: Partial<Rule> = {}): this {
    const from = (plan.after ?? 0) + 1;
    this.rules.push({ op, apply, from, to: from + (plan.times ?? 1) - 1, names: plan.names ?? /(?:)/, seen: 0, ...more });
    return this;
  }

  /** Calls of `op` fail with `error` (default: a connection reset, which passes). */
  fail(op: Operation, plan: FaultPlan = {}, error: ErrorOf = passingError): this {
    return this.add(op, 'fail', plan, { error });
  }

  delay(op: Operation, ms: number, plan: FaultPlan = {}): this {
    return this.add(op, 'delay', plan, { ms });
  }

  /** Loads return the bytes with one bit flipped in the middle. */
  corrupt(plan: FaultPlan = {}): this {
    return this.add('load', 'corrupt', plan);
  }

  /** Saves say they succeeded and store nothing. */
  lose(plan: FaultPlan = {}): this {
    return this.add('save', 'lose', plan);
  }
}
