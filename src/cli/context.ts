/** What every command needs: the repository location, the password, opening, and errors → exit codes. */
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import type { Backend } from '../store/backend/backend.js';
import { backendAt } from '../store/backend/at.js';
import { errors, StrataError } from '../store/errors.js';
import { Repository } from '../store/repository.js';
import { makeOutput, type Output } from './output.js';

export interface GlobalOptions {
  repo?: string;
  passwordFile?: string;
  cacheDir?: string;
  json?: boolean;
  quiet?: boolean;
}

export function output(opts: GlobalOptions): Output {
  return makeOutput(!!opts.json, !!opts.quiet);
}

export function backendFor(opts: GlobalOptions): Backend {
  const location = opts.repo ?? process.env.STRATA_REPOSITORY;
  if (!location) throw errors.usage('no repository given: use --repo DIR or set STRATA_REPOSITORY');
  return backendAt(location);
}

/** STRATA_PASSWORD, then --password-file / STRATA_PASSWORD_FILE, then a prompt on a terminal. */
export async function password(opts: GlobalOptions, confirm = false): Promise<string | undefined> {
  if (process.env.STRATA_PASSWORD !== undefined) return process.env.STRATA_PASSWORD;
  const file = opts.passwordFile ?? process.env.STRATA_PASSWORD_FILE;
  if (file) {
    try {
      return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (e) {
      throw errors.usage(`cannot read the password file ${file}: ${(e as Error).message}`);
    }
  }
  if (!process.stdin.isTTY) return undefined;
  const first = await prompt('repository password: ');
  if (confirm && (await prompt('enter the password again: ')) !== first) throw errors.usage('the passwords do not match');
  return first;
}

function prompt(question: string): Promise<string> {
  process.stderr.write(question);
  const muted = new Writable({ write: (_chunk, _enc, done) => done() });
  const rl = createInterface({ input: process.stdin, output: muted, terminal: true });
  return new Promise((resolve) => rl.question('', (answer) => {
    rl.close();
    process.stderr.write('\n');
    resolve(answer);
  }));
}

export async function openRepository(opts: GlobalOptions, out: Output, readOnly: boolean): Promise<Repository> {
  return Repository.open(backendFor(opts), {
    password: await password(opts),
    cacheDir: opts.cacheDir,
    readOnly,
    onWarning: (m) => out.warn(m),
  });
}

/** Runs a command body and turns what it throws into a message and a documented exit code. */
export async function run(opts: GlobalOptions, body: (out: Output) => Promise<number | void>): Promise<void> {
  const out = output(opts);
  try {
    process.exitCode = (await body(out)) ?? 0;
  } catch (e) {
    if (e instanceof StrataError) {
      if (out.json) process.stdout.write(`${JSON.stringify({ error: { code: e.code, message: e.message } })}\n`);
      process.stderr.write(`strata: ${e.message}\n`);
      process.exitCode = e.exitCode;
    } else if ((e as { code?: string }).code === 'commander.help') {
      process.exitCode = 0;
    } else {
      process.stderr.write(`strata: unexpected error: ${(e as Error).stack ?? e}\n`);
      process.exitCode = 2;
    }
  }
}

/** Resolves on SIGINT or SIGTERM: how long-running commands (mount, serve) wait to stop. */
export const untilStopped = (): Promise<void> =>
  new Promise((resolve) => { process.once('SIGINT', () => resolve()).once('SIGTERM', () => resolve()); });
