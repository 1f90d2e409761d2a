/**
 * A real smbd for tests: loopback only, an unprivileged port, a private config
 * and state folder, one test user. Stopped when the test ends.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { freePort } from './port.js';
import { tempDir } from './tmp.js';

export const SMB_USER = 'strata-smb';
export const SMB_PASSWORD = 'Smb-test-password-1';

export const hasSamba = (): boolean => spawnSync('sh', ['-c', 'command -v smbd && command -v smbclient']).status === 0;

async function waitForPort(port: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => { socket.destroy(); resolve(true); }).on('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`smbd did not listen on ${port}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Starts smbd with `shares` (name → extra smb.conf lines); returns an smbclient runner. */
export async function startSamba(t: Parameters<typeof tempDir>[0], shares: Record<string, string[]>) {
  const dir = tempDir(t, 'strata-smb-');
  for (const sub of ['private', 'lock', 'state', 'cache', 'pid', 'ncalrpc']) mkdirSync(path.join(dir, sub));
  if (spawnSync('id', [SMB_USER]).status !== 0) execFileSync('useradd', ['--no-create-home', '--shell', '/usr/sbin/nologin', SMB_USER]);
  const port = await freePort();
  const conf = path.join(dir, 'smb.conf');
  writeFileSync(conf, [
    '[global]',
    '  server role = standalone server',
    '  interfaces = 127.0.0.1',
    '  bind interfaces only = yes',
    `  smb ports = ${port}`,
    ...['private', 'lock', 'state', 'cache', 'pid', 'ncalrpc'].map((s) => `  ${s === 'ncalrpc' ? 'ncalrpc dir' : `${s} directory`} = ${path.join(dir, s)}`),
    `  passdb backend = tdbsam:${path.join(dir, 'private', 'passdb.tdb')}`,
    `  log file = ${path.join(dir, 'log.smbd')}`,
    '  disable netbios = yes',
    '  load printers = no',
    '  printcap name = /dev/null',
    '  disable spoolss = yes',
    '  map to guest = never',
    '  server min protocol = SMB2',
    ...Object.entries(shares).flatMap(([name, lines]) => [`[${name}]`, ...lines.map((l) => `  ${l.trim()}`)]),
    '',
  ].join('\n'));
  execFileSync('smbpasswd', ['-c', conf, '-s', '-a', SMB_USER], { input: `${SMB_PASSWORD}\n${SMB_PASSWORD}\n` });
  // Its own process group: smbd signals its whole group when it stops, and that must not be the test's.
  const smbd = spawn('smbd', ['--foreground', '--no-process-group', `--configfile=${conf}`], { stdio: 'ignore', detached: true });
  t.teardown(() => {
    try {
      process.kill(-smbd.pid!, 'SIGTERM');
    } catch { /* already gone */ }
  });
  await waitForPort(port, 15_000);
  return {
    port,
    /** The end of smbd's log, for failure messages. */
    log: () => { try { return readFileSync(path.join(dir, 'log.smbd'), 'utf8').slice(-3000); } catch { return ''; } },
    /** Runs smbclient commands on a share as the test user. */
    client(share: string, commands: string, cwd?: string) {
      return spawnSync('smbclient', [`//127.0.0.1/${share}`, '-p', String(port), '-U', `${SMB_USER}%${SMB_PASSWORD}`, `--configfile=${conf}`, '-c', commands], {
        encoding: 'utf8', cwd, timeout: 120_000, maxBuffer: 1 << 28,
      });
    },
  };
}
