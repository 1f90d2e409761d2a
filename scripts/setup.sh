#!/usr/bin/env bash
# Sets Strata up on a fresh Debian/Ubuntu machine (as root or with sudo), then
# runs the main job: `strata serve` on its embedded default (a demo share under
# /tmp/strata-demo, a local repository, every version mounted), until Ctrl-C.
#   bash scripts/setup.sh            set up + strata serve
#   bash scripts/setup.sh --no-demo  set up only (CI)
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
# Build tools for the native addons; fuse3 and libfuse3-dev for the mount (our own libfuse 3
# binding in native/); liblz4-dev and libzstd-dev for compressing chunks in C; rsync, acl, attr for the fidelity
# tests; samba and smbclient for the SMB tests; GNU time for the peak memory the tests and the bench measure;
# Ceph's mon, osd and RADOS Gateway for the S3 tests (a throwaway cluster on loopback: scripts/ceph/).
packages=(build-essential python3 pkg-config fuse3 libfuse3-dev liblz4-dev libzstd-dev rsync acl attr samba samba-vfs-modules smbclient time
  ceph-mon ceph-osd radosgw ceph-common curl)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v node >/dev/null || { echo "setup: Node.js 20 or later is needed (https://nodejs.org or Debian's nodejs)" >&2; exit 1; }

echo "setup: npm ci (dependencies and the native addon)" >&2
# npm 11 drops some platforms' optional packages from the lock file and then refuses `npm ci`
# (msgpackr-extract's prebuilt binaries): fall back to an install that honours the lock where it can.
npm ci --no-audit --no-fund --loglevel=error 2>/dev/null || npm install --no-audit --no-fund --loglevel=error
[ -f native/build/Release/strata_native.node ] && [ -f native/build/Release/strata_fuse.node ] || npm run install --silent

[ "${1:-}" = "--no-demo" ] || exec bin/strata.js serve
