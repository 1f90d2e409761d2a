/**
 * Samba share definitions for a Strata mount (browse every version over SMB),
 * and for a live share whose "Previous Versions" tab lists Strata's snapshots
 * (vfs_shadow_copy2 pointed at the mount's @GMT-… folders).
 */
export interface SmbConfigOptions {
  mountpoint: string;
  /** The live share folder that Strata backs up (optional). */
  share?: string;
  name: string;
  /** Path of the live share inside the snapshots (defaults to the share's own path, as Strata stores full paths). */
  snapshotPath?: string;
}

export function smbConfig(o: SmbConfigOptions): string {
  const lines = [
    `# Every Strata version as folders, read-only. The mount must run with --allow-other.`,
    `[${o.name}]`,
    `   path = ${o.mountpoint}`,
    `   read only = yes`,
    `   browseable = yes`,
    `   # The kernel applies the stored owners and modes (default_permissions):`,
    `   # a user sees what they could read on the NAS.`,
    `   follow symlinks = yes`,
    `   wide links = no`,
  ];
  if (o.share) {
    const inside = (o.snapshotPath ?? o.share).replace(/^\/+/, '');
    lines.push(
      '',
      `# The live share, with Windows "Previous Versions" listing Strata's snapshots.`,
      `[${o.name}-live]`,
      `   path = ${o.share}`,
      `   read only = no`,
      `   vfs objects = shadow_copy2`,
      `   shadow:mountpoint = ${o.share}`,
      `   shadow:snapdir = ${o.mountpoint}`,
      `   shadow:snapsharepath = ${inside}`,
      `   shadow:format = @GMT-%Y.%m.%d-%H.%M.%S`,
      `   shadow:localtime = no`,
      `   shadow:sort = desc`,
    );
  }
  return `${lines.join('\n')}\n`;
}
