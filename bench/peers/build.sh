#!/usr/bin/env bash
# Build the peers' environments for bench/serving.py, one venv each from its pins (requirements-<peer>.txt):
# Seldon MLServer + mlserver-sklearn, KServe, BentoML pin conflicting packages, so each gets its own, and none
# goes into the project's environment (make install / make install-test do not build them).
# Usage: bench/peers/build.sh [DIR] [PEER...]   DIR default: .venv/peers in the repository
# Then: python bench/serving.py --peers DIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="${1:-$here/../../.venv/peers}"
shift || true
peers=("$@")
[ ${#peers[@]} -gt 0 ] || peers=(mlserver kserve bentoml)
python="${PYTHON:-python3.11}"
for peer in "${peers[@]}"; do
  pins="$here/requirements-$peer.txt"
  [ -f "$pins" ] || { echo "no pins for $peer: $pins" >&2; exit 2; }
  echo "== $peer -> $dir/$peer"
  "$python" -m venv "$dir/$peer"
  "$dir/$peer/bin/python" -m pip install --quiet --no-deps -r "$pins"
  "$dir/$peer/bin/python" -m pip check
done
