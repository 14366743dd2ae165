#!/usr/bin/env bash
# Client libraries that others wrote, each in its own environment under VENV/clients/NAME, for the tests
# that call our scoring service with them. They live apart from the project because their pins clash
# with it (kserve holds pandas below 3 and protobuf below 7). Pinned in environment_setup/clients/NAME.txt.
# Idempotent: an environment whose pins file has not changed is left as it is.
# Usage: environment_setup/clients.sh [VENV]   (default: .venv; `make install` runs it)
set -euo pipefail
VENV="${1:-.venv}"
HERE="$(cd "$(dirname "$0")" && pwd)"
PYTHON="${PYTHON:-python3}"

for pins in "$HERE"/clients/*.txt; do
  name="$(basename "$pins" .txt)"
  target="$VENV/clients/$name"
  if [ -x "$target/bin/python" ] && cmp -s "$pins" "$target/.pins"; then
    echo "clients: $name already in $target"
    continue
  fi
  rm -rf "$target"
  "$PYTHON" -m venv "$target"
  "$target/bin/python" -m pip install -q --disable-pip-version-check -r "$pins"
  cp "$pins" "$target/.pins"
  echo "clients: $name installed in $target"
done
