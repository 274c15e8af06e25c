#!/usr/bin/env bash
# Set up, seed the demo store, mount it at /mnt/sly and say what to look at.
set -euo pipefail
cd "$(dirname "$0")/.."
SLYFS_NO_SDK=1 ./scripts/setup.sh
STORE=${SLYFS_STORE:-/var/lib/slyfs-demo}
MNT=${1:-/mnt/sly}
.venv/bin/slyfs demo --store "$STORE"
if mountpoint -q "$MNT" 2>/dev/null || ! ls "$MNT" >/dev/null 2>&1; then
  .venv/bin/slyfs unmount "$MNT" 2>/dev/null || true
fi
mkdir -p "$MNT"
.venv/bin/slyfs mount "$MNT" --store "$STORE"
P="$MNT/demo-team/demo-workspace/street-scenes"
cat <<MSG

The demo project is mounted. Look at:
  cat $MNT/README.txt
  ls -l $P/
  ls -l $P/sly/train/img | head
  python3 -m json.tool $P/sly/train/ann/train_000.jpg.json | head -40
  cp -r $P/sly /tmp/street-scenes-sly      # a Supervisely Format copy the official SDK opens

Unmount with:  $(pwd)/.venv/bin/slyfs unmount $MNT      (or: fusermount3 -u $MNT)
MSG
find "$P" -maxdepth 3 | awk 'NR <= 20'   # awk reads it all: no SIGPIPE under pipefail
