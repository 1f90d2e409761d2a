/** `strata serve`: opens the repository, starts the capture service (and the mount), logs, stops on a signal. */
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import pretty from 'pino-pretty';
import { mountView, type Mounted } from '../fs/mount.js';
import { backendAt } from '../store/backend/at.js';
import { repositoryViewSource, SnapshotView } from '../fs/vtree.js';
import { defaultCacheDir, Repository } from '../store/repository.js';
import { CaptureService } from '../sync/service.js';
import type { ServiceConfig } from '../sync/service-config.js';
import { password, untilStopped, type GlobalOptions } from './context.js';
import type { Output } from './output.js';

const DEMO_PASSWORD = 'demo';

export const statusFileOf = (config: ServiceConfig, opts: GlobalOptions): string =>
  path.join(config.cacheDir ?? opts.cacheDir ?? defaultCacheDir(), 'serve-status.json');

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** For the embedded default: a demo share with a few files and a repository (password "demo"), if missing. */
export async function prepareDemo(config: ServiceConfig): Promise<ServiceConfig> {
  const share = config.sources[0].path;
  if (!existsSync(share)) {
    await fs.mkdir(path.join(share, 'documents'), { recursive: true });
    await fs.writeFile(path.join(share, 'documents', 'welcome.txt'), 'Edit me, then look in the mount: every version is a folder.\n');
  }
  process.env.STRATA_PASSWORD ??= DEMO_PASSWORD;
  if (!existsSync(path.join(config.repository, 'config'))) {
    await Repository.init(backendAt(config.repository), { password: process.env.STRATA_PASSWORD });
  }
  return config;
}

function makeLogger(): pino.Logger {
  // Structured JSON lines for a journal or a file; readable lines on a terminal.
  return process.stdout.isTTY ? pino(pretty({ colorize: true, translateTime: 'SYS:HH:MM:ss', ignore: 'pid,hostname' })) : pino();
}

export async function serve(config: ServiceConfig, opts: GlobalOptions, out: Output): Promise<void> {
  // Signals are ours from the start: a stop while the repository opens or the mount comes up is a clean stop.
  const stopped = untilStopped();
  const log = makeLogger();
  const pw = await password({ ...opts, passwordFile: config.passwordFile ?? opts.passwordFile });
  const cacheDir = config.cacheDir ?? opts.cacheDir;
  const backend = backendAt(config.repository);
  const repo = await Repository.open(backend, { password: pw, cacheDir, onWarning: (m) => log.warn({}, m) });
  let mounted: Mounted | undefined;
  let reader: Repository | undefined;
  let stopping = false;
  const service = await CaptureService.start(repo, config, log, statusFileOf(config, opts));
  try {
    if (config.mount) {
      reader = await Repository.open(backendAt(config.repository), { password: pw, cacheDir, readOnly: true });
      await fs.mkdir(config.mount, { recursive: true });
      mounted = await mountView(new SnapshotView(repositoryViewSource(reader, (m) => log.warn({}, m))), path.resolve(config.mount), {
        onError: (p, m) => log.error({ path: p }, m),
      });
      log.info({ mount: config.mount }, 'every version is browsable here');
      void mounted.closed.then(() => { if (!stopping) log.warn({ mount: config.mount }, 'the mount was unmounted from outside; capture goes on'); });
    }
    out.info(`strata serve: ${config.sources.length} source(s) into ${backend.location}; Ctrl-C or SIGTERM stops`);
    await stopped;
    stopping = true;
    log.info({}, 'stopping');
  } finally {
    await service.stop();
    await mounted?.unmount().catch(() => {});
    await reader?.close();
    await repo.close();
    // Something still inside the detached mount keeps the session open: exiting closes it.
    if (mounted?.stats()) process.exit(process.exitCode ?? 0);
  }
}
