/**
 * Declarative source trees written into temp dirs: what a NAS holds, edge
 * cases included (byte-string names, sparse files, hard links, special files,
 * owners, setuid/sticky modes, xattrs and ACLs, nanosecond times).
 */
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { native } from '../../src/native.js';
import { restore } from '../../src/sync/restore.js';
import { resolvePath, type Reader } from '../../src/sync/tree-walk.js';
import { Random } from './random.js';

export type Node =
  | { type: 'file'; content: Buffer; mode?: number; uid?: number; gid?: number; xattrs?: Record<string, string>; acl?: string; mtimeNs?: bigint }
  | { type: 'sparse'; size: number; data: [offset: number, bytes: Buffer][] }
  | { type: 'dir'; children: Record<string, Node>; mode?: number; uid?: number; gid?: number; xattrs?: Record<string, string> }
  | { type: 'symlink'; target: string | Buffer }
  | { type: 'hardlink'; to: string }
  | { type: 'fifo'; mode?: number }
  | { type: 'chardev'; major: number; minor: number };

/** What rsync -aHAX --checksum would change to make `to` like `from`: empty when they are alike in every way it sees. */
export function rsyncDifferences(from: string, to: string): string {
  return execFileSync('rsync', ['-aHAX', '--dry-run', '--itemize-changes', '--checksum', `${from}/`, `${to}/`], { encoding: 'latin1' });
}

/** Restores what `tree` holds at `source` into `target`; what rsync then finds different from `expected` (empty: alike). */
export async function restoredDifferences(reader: Reader, tree: Buffer, source: string, target: string, expected = source): Promise<string> {
  await restore(reader, await resolvePath(reader, tree, source), target);
  return rsyncDifferences(expected, target);
}

/** A name in a tree spec: UTF-8, where `\\xNN` stands for one raw byte. */
export function nameBytes(name: string): Buffer {
  const parts = name.split(/(\\x[0-9A-F]{2})/);
  return Buffer.concat(parts.map((p) => (/^\\x[0-9A-F]{2}$/.test(p) ? Buffer.from([parseInt(p.slice(2), 16)]) : Buffer.from(p))));
}

/** Writes the `children` into the existing folder `root`. */
export async function writeTree(root: string, children: Record<string, Node>): Promise<void> {
  const dirsToFinish: [Buffer, Node & { type: 'dir' }][] = [];
  const write = async (dir: Buffer, kids: Record<string, Node>): Promise<void> => {
    for (const [name, node] of Object.entries(kids)) {
      const p = Buffer.concat([dir, Buffer.from('/'), nameBytes(name)]);
      switch (node.type) {
        case 'file':
          await fs.writeFile(p, node.content);
          if (node.uid !== undefined) await fs.chown(p, node.uid, node.gid ?? node.uid);
          if (node.mode !== undefined) await fs.chmod(p, node.mode);
          for (const [k, v] of Object.entries(node.xattrs ?? {})) native.setXattr(p, k, Buffer.from(v));
          if (node.acl) execFileSync('setfacl', ['-m', node.acl, p.toString('latin1')]);
          if (node.mtimeNs !== undefined) {
            const sec = Number(node.mtimeNs / 1_000_000_000n);
            const nsec = Number(node.mtimeNs % 1_000_000_000n);
            native.utimesNs(p, sec, nsec, sec, nsec);
          }
          break;
        case 'sparse': {
          const handle = await fs.open(p, 'w');
          for (const [offset, bytes] of node.data) await handle.write(bytes, 0, bytes.length, offset);
          await handle.truncate(node.size);
          await handle.close();
          break;
        }
        case 'dir':
          await fs.mkdir(p);
          await write(p, node.children);
          dirsToFinish.push([p, node]);
          break;
        case 'symlink':
          await fs.symlink(node.target, p);
          break;
        case 'hardlink':
          await fs.link(Buffer.concat([Buffer.from(`${root}/`), nameBytes(node.to)]), p);
          break;
        case 'fifo':
          native.mknod(p, 0o010000 | (node.mode ?? 0o644), 0);
          break;
        case 'chardev':
          native.mknod(p, 0o020000 | 0o644, node.major * 256 + node.minor);
          break;
      }
    }
  };
  await write(Buffer.from(root), children);
  for (const [p, node] of dirsToFinish) {
    if (node.uid !== undefined) await fs.chown(p, node.uid, node.gid ?? node.uid);
    if (node.mode !== undefined) await fs.chmod(p, node.mode);
    for (const [k, v] of Object.entries(node.xattrs ?? {})) native.setXattr(p, k, Buffer.from(v));
  }
}

/** The edge cases a NAS holds, with content from `seed`. */
export function nasTree(seed: number): Record<string, Node> {
  const rnd = new Random(seed);
  const files: Record<string, Node> = {};
  for (let i = 0; i < 40; i++) files[`doc-${i}.txt`] = { type: 'file', content: rnd.text(rnd.int(20000)) };
  return {
    'docs': { type: 'dir', children: files },
    'empty.txt': { type: 'file', content: Buffer.alloc(0) },
    'big.bin': { type: 'file', content: rnd.bytes(3 * 1024 * 1024 + 12345) },
    'big-text.log': { type: 'file', content: rnd.text(5 * 1024 * 1024) },
    'sparse.img': { type: 'sparse', size: 64 * 1024 * 1024, data: [[4096, rnd.bytes(5000)], [40 * 1024 * 1024, rnd.bytes(70000)]] },
    'caf\\xE9-latin1-\\xFF.txt': { type: 'file', content: Buffer.from('a name that is not UTF-8\n') },
    'new\nline name': { type: 'file', content: Buffer.from('newline in the name\n') },
    ['n'.repeat(255)]: { type: 'file', content: Buffer.from('a 255-byte name\n') },
    'unicode-日本語-ü.txt': { type: 'file', content: Buffer.from('utf-8 name\n') },
    'setuid-tool': { type: 'file', content: Buffer.from('#!/bin/sh\n'), mode: 0o4755 },
    'owned': { type: 'file', content: Buffer.from('owned by 1234:5678\n'), uid: 1234, gid: 5678, mode: 0o640 },
    'samba-attrs.docx': { type: 'file', content: rnd.bytes(3000), xattrs: { 'user.DOSATTRIB': '0x20', 'user.comment': 'kept' } },
    'acl-file': { type: 'file', content: Buffer.from('acl\n'), acl: 'u:1234:rw,g:5678:r' },
    'nanos': { type: 'file', content: Buffer.from('ns\n'), mtimeNs: 1700000000123456789n },
    'link-a': { type: 'file', content: Buffer.from('hard linked\n') },
    'link-b': { type: 'hardlink', to: 'link-a' },
    'sym-ok': { type: 'symlink', target: 'docs/doc-1.txt' },
    'sym-dangling': { type: 'symlink', target: '/nonexistent/target' },
    'sym-bytes': { type: 'symlink', target: Buffer.from('caf\xe9', 'latin1') },
    'fifo': { type: 'fifo', mode: 0o600 },
    'null-dev': { type: 'chardev', major: 1, minor: 3 },
    'sticky': { type: 'dir', mode: 0o1777, children: { 'inside': { type: 'file', content: Buffer.from('x') } } },
    'private': { type: 'dir', mode: 0o700, uid: 1234, gid: 5678, xattrs: { 'user.note': 'dir xattr' }, children: {
      'deep': { type: 'dir', children: { 'deeper': { type: 'dir', children: { 'leaf.txt': { type: 'file', content: rnd.text(100) } } } } },
    } },
    'dup-1.bin': { type: 'file', content: Buffer.alloc(1) },
  };
}
