#!/usr/bin/env bash
# The demo on the embedded default: a sample share and a local repository under
# ${STRATA_TOUR_DIR:-/tmp/strata-tour}; backed up twice with a change in between,
# snapshots listed, the first one restored and compared.
set -euo pipefail
cd "$(dirname "$0")/.."
demo=${STRATA_TOUR_DIR:-/tmp/strata-tour}
rm -rf "$demo"
mkdir -p "$demo/share/documents" "$demo/share/photos"
export STRATA_REPOSITORY="$demo/repository" STRATA_PASSWORD=demo STRATA_CACHE_DIR="$demo/cache"
strata() { node bin/strata.js "$@"; }

for i in $(seq 1 50); do printf 'Quarterly report %d\n%s\n' "$i" "$(seq 1 200)" >"$demo/share/documents/report-$i.txt"; done
head -c 5000000 /dev/urandom >"$demo/share/photos/holiday.jpg"
ln -s documents/report-1.txt "$demo/share/latest-report"

echo "== strata init (repository $STRATA_REPOSITORY, password 'demo')"
strata init
echo "== strata backup (first: everything is read)"
strata backup "$demo/share" --tag demo
echo "== a change: one report edited, one added"
echo "edited" >>"$demo/share/documents/report-7.txt"
echo "new" >"$demo/share/documents/report-51.txt"
echo "== strata backup (second: only the changes are read)"
strata backup "$demo/share" --tag demo
echo "== strata snapshots"
strata snapshots
first=$(strata snapshots --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s)[0].id))')
echo "== strata diff ${first:0:8} latest"
strata diff "$first" latest
echo "== strata restore ${first:0:8}:$demo/share --target $demo/restored"
strata restore "$first:$demo/share" --target "$demo/restored"
echo "== what differs between the restored first version and today's share (expected: report-7 changed, report-51 added)"
diff -rq "$demo/restored" "$demo/share" || true
echo
echo "Demo done. Try: STRATA_REPOSITORY=$STRATA_REPOSITORY STRATA_PASSWORD=demo npx strata ls latest"
