/**
 * Everything the CLI prints goes through here: human text or --json, warnings
 * on stderr, and progress bars only on a terminal.
 */
import { createRequire } from 'node:module';

export interface Output {
  json: boolean;
  /** A result: an object printed as JSON, or the human lines. */
  result(value: unknown, human: () => string | string[]): void;
  /** One line of a streamed listing (JSON lines with --json). */
  line(value: unknown, human: string): void;
  warn(message: string): void;
  info(message: string): void;
  /** `unit`: what `files` counts (files; packs for check). */
  progress(kind: 'backup' | 'restore' | 'check' | 'replicate', unit?: string): Progress;
}

export interface Progress {
  /** False when nothing is shown (not a terminal, --json, --quiet): no need to gather totals. */
  visible: boolean;
  update(values: { files: number; bytes: number; totalBytes?: number; current?: string }): void;
  stop(): void;
}

const noProgress: Progress = { visible: false, update() {}, stop() {} };

export function makeOutput(json: boolean, quiet = false): Output {
  return {
    json,
    result(value, human) {
      if (json) process.stdout.write(`${JSON.stringify(value, jsonReplacer)}\n`);
      else {
        const text = human();
        process.stdout.write(`${Array.isArray(text) ? text.join('\n') : text}\n`);
      }
    },
    line(value, human) {
      process.stdout.write(json ? `${JSON.stringify(value, jsonReplacer)}\n` : `${human}\n`);
    },
    warn(message) {
      process.stderr.write(`warning: ${message}\n`);
    },
    info(message) {
      if (!json && !quiet) process.stderr.write(`${message}\n`);
    },
    progress(kind, unit = 'files') {
      if (json || quiet || !process.stderr.isTTY) return noProgress;
      return terminalProgress(kind, unit);
    },
  };
}

/** Loaded on a terminal only: a command run by a script or a service does not pay for it. */
const loadProgressBars = (): typeof import('cli-progress') => createRequire(import.meta.url)('cli-progress');

function terminalProgress(kind: string, unit: string): Progress {
  const started = Date.now();
  const cliProgress = loadProgressBars();
  const bar = new cliProgress.SingleBar({
    // Without an expected total (a first backup) there is no bar or ETA to show honestly.
    format: (options, params, payload) => {
      const head = payload.estimated
        ? `${kind} ${(options.barCompleteString ?? '').slice(0, Math.round(params.progress * 30)).padEnd(30, '░')} ${Math.floor(params.progress * 100)}% | `
        : `${kind} | `;
      const eta = payload.estimated ? ` | ETA ${formatSeconds(params.eta)}` : '';
      return `${head}${payload.files} ${unit} | ${payload.done} | ${payload.rate}/s${eta} | ${payload.current}`;
    },
    barCompleteChar: '█',
    stream: process.stderr,
    hideCursor: true,
    clearOnComplete: true,
    fps: 5,
    etaBuffer: 50,
  });
  let active = false;
  return {
    visible: true,
    update({ files, bytes, totalBytes, current }) {
      const total = Math.max(totalBytes ?? 0, bytes, 1);
      const seconds = (Date.now() - started) / 1000;
      const payload = { files, done: formatBytes(bytes), rate: formatBytes(seconds > 0 ? bytes / seconds : 0), current: shorten(current ?? ''), estimated: totalBytes !== undefined };
      if (!active) {
        bar.start(total, bytes, payload);
        active = true;
      } else {
        bar.setTotal(total);
        bar.update(bytes, payload);
      }
    },
    stop() {
      if (active) bar.stop();
    },
  };
}

const formatSeconds = (s: number): string =>
  !Number.isFinite(s) ? '?' : s < 60 ? `${Math.round(s)}s` : s < 3600 ? `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;

const shorten = (s: string): string => (s.length > 40 ? `…${s.slice(-39)}` : s);

/** "1 file", "2 files" (or the plural given). */
export const count = (n: number, noun: string, plural = `${noun}s`): string => `${n} ${n === 1 ? noun : plural}`;

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(n < 10 ? 2 : 1)} ${units[i]}`;
}

/** Buffers (ids) as hex in JSON. */
function jsonReplacer(_key: string, value: unknown): unknown {
  if (value && typeof value === 'object' && (value as { type?: string }).type === 'Buffer' && Array.isArray((value as { data?: unknown }).data)) {
    return Buffer.from((value as { data: number[] }).data).toString('hex');
  }
  return value;
}
