#!/usr/bin/env bash
# Install everything slyfs needs on a fresh Debian machine, as root. Safe to run again.
#   SLYFS_NO_SDK=1 skips the official Supervisely SDK venv (.venv-sdk) used by the interop tests.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
# postgresql: the team store's tests run a throw-away cluster from its binaries (tests/helpers/services.py)
wanted=(fuse3 libfuse3-dev pkg-config gcc rsync postgresql)
# Debian's python3 needs its headers and venv module; a pyenv or image Python brings its own.
if ! command -v python3 >/dev/null || [ "$(command -v python3)" = /usr/bin/python3 ]; then
  wanted+=(python3 python3-dev python3-venv)
fi
for pkg in "${wanted[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  pkgs="${need[*]}"
  echo "== apt-get install $pkgs"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs >/dev/null
fi

python3 -c 'import sys; assert sys.version_info >= (3, 11), "slyfs needs Python 3.11+"'
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  python3 -m venv .venv
fi
stamp=.venv/.slyfs-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "== installing slyfs with its test and team-store extras into .venv"
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e '.[test,team]'
  touch "$stamp"
fi

# mount(8), fstab and `mount -t fuse.slyfs` run `slyfs` from the system PATH (mount.fuse3's convention).
ln -sf "$(pwd)/.venv/bin/slyfs" /usr/local/bin/slyfs

if [ "${SLYFS_NO_SDK:-0}" != "1" ]; then
  sdk_stamp=.venv-sdk/.installed-2
  if [ ! -f "$sdk_stamp" ]; then
    echo "== installing the official Supervisely SDK into .venv-sdk (interop tests)"
    [ -x .venv-sdk/bin/python ] || python3 -m venv .venv-sdk
    .venv-sdk/bin/pip install -q --upgrade pip >/dev/null
    # pycocotools: the SDK's own COCO importer needs it (the import benchmark's baseline)
    .venv-sdk/bin/pip install -q 'supervisely>=6.74,<7' 'pycocotools>=2.0.7,<3' 2>&1 | grep -v "^WARNING: Location" || true
    .venv-sdk/bin/python -c 'import supervisely, pycocotools' && touch "$sdk_stamp"
  fi
fi
echo "== setup done"
